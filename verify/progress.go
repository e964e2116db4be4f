package verify

import "time"

// watchProgress calls report(done, total, false) in pages a few times a
// second until the returned stop is called, which reports the end when
// the check completed. done is an estimate (see touchedBytes).
func watchProgress(report func(done, total int64, finished bool), pageSize int, total int64) (stop func(ok bool)) {
	if report == nil || pageSize <= 0 || total <= 0 {
		return func(bool) {}
	}
	base, ok := touchedBytes()
	report(0, total, false)
	quit := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			if !ok {
				continue
			}
			n, _ := touchedBytes()
			report(min(max(0, (n-base)/int64(pageSize)), total), total, false)
		}
	}()
	return func(ok bool) {
		close(quit)
		<-finished
		if ok {
			report(total, total, true)
		}
	}
}
