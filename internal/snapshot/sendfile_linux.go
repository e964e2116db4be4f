package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"sqlite-backup/internal/format/sqlitefile"

	"golang.org/x/sys/unix"
)

// copyInKernel is the file copy with sendfile(2): the kernel copies the
// database file's pages from its page cache into the temp file's, one
// copy where read and write make two, and nothing passes through our
// memory but the pages taken from the WAL and page 1's format bytes.
// (Not copy_file_range: on XFS and btrfs it shares extents with the live
// database, whose every later write would then be copy-on-write.)
// It returns handled false, having written nothing, where the kernel
// cannot send between these files; the caller then reads and writes.
func copyInKernel(ctx context.Context, files *sourceFiles, plan *filePlan, out *os.File, hash *followHash, progress func(done, total int)) (handled bool, err error) {
	ps := int64(plan.pageSize)
	per := max(int64(sendChunkBytes)/ps, 1)
	overlay := make([]int64, 0, len(plan.frames))
	for p := range plan.frames {
		overlay = append(overlay, int64(p))
	}
	slices.Sort(overlay)
	page := make([]byte, ps)
	in, dst := int(files.db.Fd()), int(out.Fd())
	dir := filepath.Dir(out.Name())

	for first := int64(1); first <= plan.pages; first += per {
		if err := ctx.Err(); err != nil {
			return true, err
		}
		n := min(per, plan.pages-first+1)
		off, length := (first-1)*ps, n*ps
		if _, err := out.Seek(off, io.SeekStart); err != nil {
			return true, fmt.Errorf("seek backup %q: %w", out.Name(), err)
		}
		sent := int64(0)
		for sent < length {
			roff := off + sent
			c, err := unix.Sendfile(dst, in, &roff, int(length-sent))
			if err == syscall.EINTR || err == syscall.EAGAIN {
				continue
			}
			if err != nil {
				if first == 1 && sent == 0 && (errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EOPNOTSUPP)) {
					return false, nil
				}
				if noSpace(err) {
					return true, fileWriteError(err, dir)
				}
				// Either side may have failed: name both.
				return true, fmt.Errorf("copy source %q into backup %q: %w", files.path, out.Name(), err)
			}
			if c == 0 {
				break // the database file ends here
			}
			sent += int64(c)
		}
		// Pages the file does not reach (it grows in the WAL first).
		for p := first + sent/ps; p < first+n; p++ {
			if _, ok := plan.frames[uint32(p)]; ok {
				continue
			}
			if sent%ps != 0 {
				return true, &errPlan{fmt.Sprintf("the database file ends inside page %d", p)}
			}
			if err := plan.beyondFile(p); err != nil {
				return true, err
			}
			clear(page)
			if _, err := out.WriteAt(page, (p-1)*ps); err != nil {
				return true, fileWriteError(err, dir)
			}
		}
		// Pages whose snapshot image is in the WAL.
		i, _ := slices.BinarySearch(overlay, first)
		for ; i < len(overlay) && overlay[i] < first+n; i++ {
			p := overlay[i]
			if _, err := files.wal.ReadAt(page, plan.frames[uint32(p)]); err != nil {
				return true, fmt.Errorf("read source %q: %w", files.path+"-wal", err)
			}
			if _, err := out.WriteAt(page, (p-1)*ps); err != nil {
				return true, fileWriteError(err, dir)
			}
		}
		if first == 1 {
			if err := markRollbackAt(out, ps); err != nil {
				return true, err
			}
		}
		hash.written(length)
		if progress != nil {
			progress(int(first+n-1), int(plan.pages))
		}
	}
	return true, nil
}

// markRollbackAt applies markRollback to page 1 of the written copy.
func markRollbackAt(out *os.File, ps int64) error {
	page1 := make([]byte, ps)
	if _, err := out.ReadAt(page1, 0); err != nil {
		return fmt.Errorf("read backup %q: %w", out.Name(), err)
	}
	if err := markRollback(page1); err != nil {
		return &errPlan{"page 1: " + err.Error()}
	}
	if _, err := out.WriteAt(page1[:sqlitefile.HeaderSize], 0); err != nil {
		return fileWriteError(err, filepath.Dir(out.Name()))
	}
	return nil
}

// preallocate reserves the copy's blocks before it is written, so a
// destination without room fails at once, before any byte is copied,
// instead of filling the disk to the last block (where the application
// may be writing too) and only then failing. A file system that cannot
// preallocate is not an error. (It was also measured for the writer's
// latency during the final fsync, in case ext4 made the application's
// commits wait for the copy's data: no change, 566 ms against 577 ms.)
func preallocate(f *os.File, size int64) error {
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if noSpace(err) {
		return err
	}
	return nil
}

// lowerThreadPriority sets the calling OS thread (not the process) to
// nice 19. Failure only leaves it at the process's priority.
func lowerThreadPriority() {
	unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 19)
}
