package snapshot

import (
	"context"

	"sqlite-backup/internal/format/encrypt"
)

// encryptTemp streams the verified temp copy (compressed on the way when
// asked) into a second temp file encrypted with age, which
// encrypt.Seal fsyncs and proves decrypts to exactly the bytes that
// were verified. Only the verified temp copy ever holds plaintext.
func encryptTemp(ctx context.Context, tmp, dir, base string, opts Options) (string, encrypt.Sealed, error) {
	etmp, err := createTemp(dir, base)
	if err != nil {
		return "", encrypt.Sealed{}, err
	}
	s, err := encrypt.Seal(ctx, tmp, etmp, opts.Compress, opts.Recipients, opts.EncryptProgress)
	if err != nil {
		removeTemp(etmp)
		return "", encrypt.Sealed{}, err
	}
	return etmp, s, nil
}
