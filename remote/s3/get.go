package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"sqlite-backup/remote"
)

// A download of more than one part runs GetThreads ranged GETs at once,
// each for the next GetPart bytes, and hands the parts on in order: one
// GET stream is paced by a single connection (on a loopback versitygw
// one stream took 1.36 times rclone's four), and an S3 service serves
// ranges of one object in parallel. Memory is bounded by GetThreads+1
// parts (20 MiB): a part is fetched only into a free buffer.
const (
	GetPart    = 4 << 20
	GetThreads = 4
)

// Get streams an object. Every ranged GET asks for the ETag the object
// had when the download began (If-Match), so the parts are all of one
// version of it: an object replaced meanwhile fails the download.
func (c *Client) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	return c.get(ctx, name, true)
}

// get streams an object; without parallel in one GET whatever its size.
func (c *Client) get(ctx context.Context, name string, parallel bool) (io.ReadCloser, error) {
	key := c.prefix + name
	oi, err := c.mc.StatObject(ctx, c.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		if r := minio.ToErrorResponse(err); r.Code == "NoSuchKey" || r.StatusCode == http.StatusNotFound && r.Code != "NoSuchBucket" {
			return nil, fmt.Errorf("%s/%s: %w", strings.TrimSuffix(c.url, "/"), name, remote.ErrNotExist)
		}
		return nil, c.classify("stat "+name, err)
	}
	if oi.Size <= GetPart || !parallel {
		opts := minio.GetObjectOptions{}
		if oi.ETag != "" {
			opts.SetMatchETag(oi.ETag)
		}
		o, err := c.mc.GetObject(ctx, c.bucket, key, opts)
		if err != nil {
			return nil, c.classify("get "+name, err)
		}
		return &single{o: o, c: c, name: name}, nil
	}
	return c.getRanges(ctx, name, key, oi.Size, oi.ETag), nil
}

// single is a one-request download whose errors are classified.
type single struct {
	o    *minio.Object
	c    *Client
	name string
}

func (s *single) Read(p []byte) (int, error) {
	n, err := s.o.Read(p)
	if err != nil && err != io.EOF {
		err = s.c.classify("get "+s.name, err)
	}
	return n, err
}

func (s *single) Close() error { return s.o.Close() }

// part is one range of the object, fetched into buf.
type part struct {
	off, n int64
	buf    []byte
	err    error
	done   chan struct{}
}

// ranges is the reader of a download in parts.
type ranges struct {
	cancel context.CancelFunc
	order  chan *part // in the object's order, as they are started
	free   chan []byte
	wg     sync.WaitGroup

	cur *part
	at  int64 // read of cur
	err error // sticky
}

func (c *Client) getRanges(ctx context.Context, name, key string, size int64, etag string) *ranges {
	ctx, cancel := context.WithCancel(ctx)
	r := &ranges{cancel: cancel, order: make(chan *part, GetThreads), free: make(chan []byte, GetThreads+1)}
	for range GetThreads + 1 {
		r.free <- make([]byte, GetPart)
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(r.order)
		for off := int64(0); off < size; off += GetPart {
			var buf []byte
			select {
			case buf = <-r.free:
			case <-ctx.Done():
				return
			}
			p := &part{off: off, n: min(GetPart, size-off), buf: buf, done: make(chan struct{})}
			select {
			case r.order <- p:
			case <-ctx.Done():
				return
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				defer close(p.done)
				p.err = remote.Retry(ctx, 3, 500*time.Millisecond, func() error {
					return c.fetchPart(ctx, name, key, etag, p)
				})
			}()
		}
	}()
	return r
}

// fetchPart reads p's range of the object into p.buf.
func (c *Client) fetchPart(ctx context.Context, name, key, etag string, p *part) error {
	opts := minio.GetObjectOptions{}
	if err := opts.SetRange(p.off, p.off+p.n-1); err != nil {
		return err
	}
	if etag != "" {
		opts.SetMatchETag(etag)
	}
	o, err := c.mc.GetObject(ctx, c.bucket, key, opts)
	if err != nil {
		return ctxErr(ctx, c.classify("get "+name, err))
	}
	defer o.Close()
	got, err := io.ReadFull(o, p.buf[:p.n])
	if err == nil {
		// The range must end where asked: a longer answer is not ours.
		var one [1]byte
		if k, _ := o.Read(one[:]); k > 0 {
			err = fmt.Errorf("bytes %d-%d: the server sent more than asked", p.off, p.off+p.n-1)
		}
	} else if err == io.ErrUnexpectedEOF || err == io.EOF {
		err = fmt.Errorf("bytes %d-%d: the server sent %d bytes: %w", p.off, p.off+p.n-1, got, io.ErrUnexpectedEOF)
	}
	if err != nil {
		if r := minio.ToErrorResponse(err); r.StatusCode == http.StatusPreconditionFailed || r.Code == "PreconditionFailed" {
			return c.fail(remote.KindIO, false, fmt.Errorf("get %s: the object changed during the download", name), "")
		}
		return ctxErr(ctx, c.classify("get "+name, err))
	}
	return nil
}

func (r *ranges) Read(b []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for r.cur == nil || r.at == r.cur.n {
		if r.cur != nil {
			r.free <- r.cur.buf // its fetcher is done: room for the next
			r.cur = nil
		}
		p, ok := <-r.order
		if !ok {
			r.err = io.EOF
			return 0, io.EOF
		}
		<-p.done
		if p.err != nil {
			r.err = p.err
			return 0, p.err
		}
		r.cur, r.at = p, 0
	}
	n := copy(b, r.cur.buf[r.at:r.cur.n])
	r.at += int64(n)
	return n, nil
}

// Close stops the fetches still running and waits for them.
func (r *ranges) Close() error {
	r.cancel()
	go func() {
		for range r.order { // let the starter see the cancellation
		}
	}()
	r.wg.Wait()
	if r.err == nil {
		r.err = errors.New("read after close")
	}
	return nil
}
