package snapshot

import (
	"context"
	"sync/atomic"

	"filippo.io/age"

	"sqlite-backup/internal/format/compress"
	"sqlite-backup/internal/format/encrypt"
)

// encryptTemp streams the temp copy (compressed on the way when asked)
// into a second temp file encrypted with age, which encrypt.Seal fsyncs
// and proves decrypts to exactly the bytes of the temp copy. Only the
// temp copy ever holds plaintext.
func encryptTemp(ctx context.Context, tmp, dir, base string, kind compress.Kind, rcpts []age.Recipient, progress func(done, total int64)) (string, encrypt.Sealed, error) {
	etmp, err := createTemp(dir, base)
	if err != nil {
		return "", encrypt.Sealed{}, err
	}
	s, err := encrypt.Seal(ctx, tmp, etmp, kind, rcpts, progress)
	if err != nil {
		removeTemp(etmp)
		return "", encrypt.Sealed{}, err
	}
	return etmp, s, nil
}

// packRun is the encryption (or, without recipients, the compression)
// of the temp copy, run while the copy is checked: the check and the
// packing both read the same private, unchanging file, and on these
// 2-core hosts the check leaves a core idle for part of its run (its
// queries are fewer than the cores by the end). Its result is used only
// after the check passed; a failed or abandoned check discards it.
type packRun struct {
	cancel context.CancelFunc
	done   chan struct{}
	show   atomic.Bool // forward progress: the check's own has ended

	tmp    string
	sealed encrypt.Sealed // encrypted
	size   int64          // compressed: the uncompressed size
	sum    string         // compressed: the compressed file's sha256
	err    error
}

func startPack(ctx context.Context, tmp, dir, base string, opts Options) *packRun {
	pctx, cancel := context.WithCancel(ctx)
	s := &packRun{cancel: cancel, done: make(chan struct{})}
	var progress func(done, total int64)
	if p := opts.EncryptProgress; p != nil {
		// One status line at a time: the check's while it runs.
		progress = func(done, total int64) {
			if s.show.Load() {
				p(done, total)
			}
		}
	}
	go func() {
		defer close(s.done)
		if len(opts.Recipients) > 0 {
			s.tmp, s.sealed, s.err = encryptTemp(pctx, tmp, dir, base, opts.Compress, opts.Recipients, progress)
		} else {
			s.tmp, s.size, s.sum, s.err = compressTemp(pctx, tmp, dir, base, opts.Compress)
		}
	}()
	return s
}

// wait waits for the packed temp file to be written and proven.
func (s *packRun) wait() error {
	s.show.Store(true)
	<-s.done
	s.cancel()
	return s.err
}

// abandon stops the packing and removes what it wrote.
func (s *packRun) abandon() {
	s.cancel()
	<-s.done
	if s.err == nil {
		removeTemp(s.tmp)
	}
}
