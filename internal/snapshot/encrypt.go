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

// sealRun is an encryption of the temp copy that runs while the copy is
// checked: the check and the encryption both read the same private,
// unchanging file, and on these 2-core hosts the check leaves a core
// idle for part of its run (its queries are fewer than the cores by the
// end). Its result is used only after the check passed; a failed or
// abandoned check discards it.
type sealRun struct {
	cancel context.CancelFunc
	done   chan struct{}
	show   atomic.Bool // forward progress: the check's own has ended

	tmp    string
	sealed encrypt.Sealed
	err    error
}

func startSeal(ctx context.Context, tmp, dir, base string, opts Options) *sealRun {
	sctx, cancel := context.WithCancel(ctx)
	s := &sealRun{cancel: cancel, done: make(chan struct{})}
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
		s.tmp, s.sealed, s.err = encryptTemp(sctx, tmp, dir, base, opts.Compress, opts.Recipients, progress)
	}()
	return s
}

// wait returns the encrypted temp file once it is written and proven.
func (s *sealRun) wait() (string, encrypt.Sealed, error) {
	s.show.Store(true)
	<-s.done
	s.cancel()
	return s.tmp, s.sealed, s.err
}

// abandon stops the encryption and removes what it wrote.
func (s *sealRun) abandon() {
	s.cancel()
	<-s.done
	if s.err == nil {
		removeTemp(s.tmp)
	}
}
