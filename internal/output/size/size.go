// Package size writes byte counts for people, in IEC units as ls -lh and
// restic show them: the one format of sizes in messages and listings.
package size

import "fmt"

// Human is n in binary units: "512 B", "1.5 KiB", "2.0 GiB".
func Human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
