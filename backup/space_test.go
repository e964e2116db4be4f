package backup

import "testing"

func TestParseMinFree(t *testing.T) {
	for _, c := range []struct {
		in   string
		want MinFree
		err  bool
	}{
		{"5%", MinFree{Percent: 5}, false},
		{"0", MinFree{}, false},
		{"0%", MinFree{}, false},
		{"2G", MinFree{Bytes: 2 << 30}, false},
		{"500M", MinFree{Bytes: 500 << 20}, false},
		{"1.5GiB", MinFree{Bytes: 3 << 29}, false},
		{"10k", MinFree{Bytes: 10 << 10}, false},
		{"4096", MinFree{Bytes: 4096}, false},
		{"100%", MinFree{}, true},
		{"-1", MinFree{}, true},
		{"lots", MinFree{}, true},
		{"", MinFree{}, true},
	} {
		got, err := ParseMinFree(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("ParseMinFree(%q) = %+v, %v", c.in, got, err)
		}
	}
}
