package lazyfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// pageSize is the unit of the page cache.
const pageSize = 4096

// ErrNoFUSE means this machine cannot mount a FUSE file system (no /dev/fuse, or
// neither root nor fusermount3).
var ErrNoFUSE = errors.New("lazyfs: FUSE is not available (apt-get install fuse3, and run as root or with /dev/fuse readable)")

// FS is a mounted lazyfs.
type FS struct {
	backing string
	mnt     string
	server  *fuse.Server

	mu    sync.Mutex
	files map[uint64]*file // guarded by mu: backing inode → writes not yet synced
	stats Stats            // guarded by mu

	umu       sync.Mutex // held while unmounting (never with mu: the server needs mu meanwhile)
	unmounted bool       // guarded by umu
}

// Stats counts what the file system did.
type Stats struct {
	Writes       uint64 // write requests
	Syncs        uint64 // fsync and fdatasync requests
	SyncedPages  uint64 // dirty pages written to the backing directory
	Cuts         uint64 // PowerCut calls
	DroppedPages uint64 // dirty pages thrown away by PowerCut
	Truncated    uint64 // files whose unsynced size change PowerCut undid
}

// Available reports why FUSE cannot be mounted here, or nil if it can be tried.
func Available() error {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoFUSE, err)
	}
	f.Close()
	if os.Geteuid() != 0 {
		for _, p := range []string{"/bin/fusermount3", "/usr/bin/fusermount3", "/bin/fusermount", "/usr/bin/fusermount"} {
			if _, err := os.Stat(p); err == nil {
				return nil
			}
		}
		return fmt.Errorf("%w: not root and no fusermount3", ErrNoFUSE)
	}
	return nil
}

// Mount mounts a lazyfs of the directory backing at mountpoint (both must exist).
func Mount(backing, mountpoint string) (*FS, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	backing, err := filepath.Abs(backing)
	if err != nil {
		return nil, fmt.Errorf("lazyfs: %w", err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return nil, fmt.Errorf("lazyfs: backing directory: %w", err)
	}
	l := &FS{backing: backing, mnt: mountpoint, files: map[uint64]*file{}}
	root := &fs.LoopbackRoot{Path: backing, Dev: uint64(st.Dev)}
	root.RootNode = &node{LoopbackNode: fs.LoopbackNode{RootData: root}, lfs: l}
	// Short kernel caches: tests look at the backing files between mounts.
	sec := time.Second
	opts := &fs.Options{
		EntryTimeout: &sec, AttrTimeout: &sec, NegativeTimeout: &sec,
		MountOptions: fuse.MountOptions{FsName: "lazyfs", Name: "lazyfs", DirectMount: os.Geteuid() == 0, MaxBackground: 64},
	}
	l.server, err = fs.Mount(mountpoint, root.RootNode, opts)
	if err != nil {
		return nil, fmt.Errorf("lazyfs: mount %s on %s: %w", backing, mountpoint, err)
	}
	return l, nil
}

// Unmount unmounts the file system; writes not synced stay in memory (PowerCut still
// drops them, Sync still writes them). It fails while files are open on the mount.
func (l *FS) Unmount() error {
	var err error
	for i := 0; i < 50; i++ { // the kernel releases a killed process's files shortly after it died
		if err = l.server.Unmount(); err == nil {
			l.server.Wait()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("lazyfs: unmount %s: %w", l.mnt, err)
}

// PowerCut drops every write not yet synced, in every file, and reports how many
// dirty pages it dropped. Call it when no process writes to the mount any more (kill
// them first), then Unmount: the kernel's own cache of the mount still shows the old
// contents.
func (l *FS) PowerCut() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	dropped := 0
	for _, f := range l.files {
		f.mu.Lock()
		dropped += len(f.dirty)
		if f.size != f.synced || f.floor != f.synced {
			l.stats.Truncated++
		}
		f.mu.Unlock()
	}
	l.stats.Cuts++
	l.stats.DroppedPages += uint64(dropped)
	l.files = map[uint64]*file{}
	return dropped
}

// Dirty reports how many pages are held in memory, not yet synced.
func (l *FS) Dirty() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, f := range l.files {
		f.mu.Lock()
		n += len(f.dirty)
		f.mu.Unlock()
	}
	return n
}

// Stats returns the counters.
func (l *FS) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// lookup returns the unsynced state of inode ino, or nil when it has none.
func (l *FS) lookup(ino uint64) *file {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.files[ino]
}

// state returns the unsynced state of the file open as fd, creating it.
func (l *FS) state(fd int) (*file, syscall.Errno) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, fs.ToErrno(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.files[st.Ino]
	if f == nil {
		f = &file{synced: st.Size, size: st.Size, floor: st.Size, dirty: map[int64][]byte{}}
		l.files[st.Ino] = f
	}
	return f, 0
}

// forget drops the state of an inode that no longer has a name.
func (l *FS) forget(ino uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.files, ino)
}

func (l *FS) count(fn func(*Stats)) {
	l.mu.Lock()
	fn(&l.stats)
	l.mu.Unlock()
}

// file is what the page cache holds of one file.
type file struct {
	mu     sync.Mutex
	synced int64            // guarded by mu: the backing file's size
	size   int64            // guarded by mu: the size the file has for its readers
	floor  int64            // guarded by mu: the smallest size since the last sync; backing bytes from here on read as zeros
	dirty  map[int64][]byte // guarded by mu: page number → the page as written
}

// readBacking fills b with the backing bytes at off, zeros past floor. mu is held.
func (f *file) readBacking(fd int, b []byte, off int64) syscall.Errno {
	clear(b)
	n := int64(len(b))
	if off+n > f.floor {
		n = f.floor - off
	}
	for done := int64(0); done < n; {
		m, err := syscall.Pread(fd, b[done:n], off+done)
		if err != nil {
			return fs.ToErrno(err)
		}
		if m == 0 {
			break
		}
		done += int64(m)
	}
	return 0
}

func (f *file) read(fd int, buf []byte, off int64) (int, syscall.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off >= f.size {
		return 0, 0
	}
	n := int64(len(buf))
	if off+n > f.size {
		n = f.size - off
	}
	for done := int64(0); done < n; {
		pos := off + done
		pg, po := pos/pageSize, pos%pageSize
		chunk := min(pageSize-po, n-done)
		if p, ok := f.dirty[pg]; ok {
			copy(buf[done:done+chunk], p[po:po+chunk])
		} else if errno := f.readBacking(fd, buf[done:done+chunk], pos); errno != 0 {
			return 0, errno
		}
		done += chunk
	}
	return int(n), 0
}

func (f *file) write(fd int, data []byte, off int64) syscall.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := int64(len(data))
	for done := int64(0); done < n; {
		pos := off + done
		pg, po := pos/pageSize, pos%pageSize
		chunk := min(pageSize-po, n-done)
		p, ok := f.dirty[pg]
		if !ok {
			p = make([]byte, pageSize)
			if errno := f.readBacking(fd, p, pg*pageSize); errno != 0 {
				return errno
			}
			f.dirty[pg] = p
		}
		copy(p[po:po+chunk], data[done:done+chunk])
		done += chunk
	}
	if off+n > f.size {
		f.size = off + n
	}
	return 0
}

func (f *file) truncate(size int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for pg, p := range f.dirty {
		switch {
		case pg*pageSize >= size:
			delete(f.dirty, pg)
		case (pg+1)*pageSize > size:
			clear(p[size-pg*pageSize:])
		}
	}
	f.size = size
	f.floor = min(f.floor, size)
}

// sync writes the dirty pages and the size to the backing file (the caller fsyncs
// it) and reports how many pages it wrote.
func (f *file) sync(fd int) (int, syscall.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.floor < f.synced {
		if err := syscall.Ftruncate(fd, f.floor); err != nil {
			return 0, fs.ToErrno(err)
		}
	}
	for pg, p := range f.dirty {
		start := pg * pageSize
		if start >= f.size {
			continue
		}
		end := min(int64(pageSize), f.size-start)
		for done := int64(0); done < end; {
			m, err := syscall.Pwrite(fd, p[done:end], start+done)
			if err != nil {
				return 0, fs.ToErrno(err)
			}
			done += int64(m)
		}
	}
	if err := syscall.Ftruncate(fd, f.size); err != nil {
		return 0, fs.ToErrno(err)
	}
	n := len(f.dirty)
	f.dirty = map[int64][]byte{}
	f.synced, f.floor = f.size, f.size
	return n, 0
}

// node is a loopback node whose files go through the page cache.
type node struct {
	fs.LoopbackNode
	lfs *FS
}

var (
	_ fs.NodeWrapChilder = (*node)(nil)
	_ fs.NodeOpener      = (*node)(nil)
	_ fs.NodeCreater     = (*node)(nil)
	_ fs.NodeGetattrer   = (*node)(nil)
	_ fs.NodeSetattrer   = (*node)(nil)
	_ fs.NodeUnlinker    = (*node)(nil)
	_ fs.NodeRenamer     = (*node)(nil)
)

// WrapChild makes every node below the root a lazyfs node.
func (n *node) WrapChild(_ context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	if ln, ok := ops.(*fs.LoopbackNode); ok {
		return &node{LoopbackNode: fs.LoopbackNode{RootData: ln.RootData}, lfs: n.lfs}
	}
	return ops
}

func (n *node) backingPath() string {
	return filepath.Join(n.RootData.Path, n.Path(n.Root()))
}

// wrap turns a loopback file handle into a lazyfs handle on the same descriptor.
func (n *node) wrap(fh fs.FileHandle) (fs.FileHandle, syscall.Errno) {
	pf, ok := fh.(fs.FilePassthroughFder)
	if !ok {
		return nil, syscall.EIO
	}
	fd, _ := pf.PassthroughFd()
	return &handle{lfs: n.lfs, fd: fd}, 0
}

// Open opens the backing file; O_TRUNC is held back like a write.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, ff, errno := n.LoopbackNode.Open(ctx, flags&^syscall.O_TRUNC)
	if errno != 0 {
		return nil, 0, errno
	}
	h, errno := n.wrap(fh)
	if errno != 0 {
		return nil, 0, errno
	}
	if flags&syscall.O_TRUNC != 0 && flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		f, errno := n.lfs.state(h.(*handle).fd)
		if errno != 0 {
			h.(*handle).Release(ctx)
			return nil, 0, errno
		}
		f.truncate(0)
	}
	return h, ff, 0
}

// Create creates the backing file at once (see the package's caveats).
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	ch, fh, ff, errno := n.LoopbackNode.Create(ctx, name, flags&^syscall.O_TRUNC, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	h, errno := n.wrap(fh)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	hd := h.(*handle)
	if flags&syscall.O_TRUNC != 0 {
		f, errno := n.lfs.state(hd.fd)
		if errno != 0 {
			hd.Release(ctx)
			return nil, nil, 0, errno
		}
		f.truncate(0)
	}
	hd.fixSize(&out.Attr)
	return ch, h, ff, 0
}

// Getattr reports the size the file has for its readers.
func (n *node) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if h, ok := fh.(*handle); ok {
		return h.Getattr(ctx, out)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(n.backingPath(), &st); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStat(&st)
	if f := n.lfs.lookup(st.Ino); f != nil {
		f.mu.Lock()
		out.Size = uint64(f.size)
		f.mu.Unlock()
	}
	return 0
}

// Setattr holds a size change back like a write and passes the rest through.
func (n *node) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if sz, ok := in.GetSize(); ok {
		fd := -1
		if h, ok := fh.(*handle); ok {
			fd = h.fd
		} else {
			tmp, err := syscall.Open(n.backingPath(), syscall.O_RDONLY, 0)
			if err != nil {
				return fs.ToErrno(err)
			}
			defer syscall.Close(tmp)
			fd = tmp
		}
		f, errno := n.lfs.state(fd)
		if errno != 0 {
			return errno
		}
		f.truncate(int64(sz))
		in.Valid &^= fuse.FATTR_SIZE
	}
	if in.Valid&^(fuse.FATTR_FH|fuse.FATTR_LOCKOWNER) != 0 {
		if errno := n.LoopbackNode.Setattr(ctx, nil, in, out); errno != 0 {
			return errno
		}
	}
	return n.Getattr(ctx, fh, out)
}

// Unlink forgets the page cache of a file whose last name goes.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	var st syscall.Stat_t
	p := filepath.Join(n.backingPath(), name)
	statErr := syscall.Lstat(p, &st)
	if errno := n.LoopbackNode.Unlink(ctx, name); errno != 0 {
		return errno
	}
	if statErr == nil && st.Nlink <= 1 {
		n.lfs.forget(st.Ino)
	}
	return 0
}

// Rename forgets the page cache of a file that the rename replaces.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	var st syscall.Stat_t
	replaced := false
	if np, ok := newParent.(*node); ok {
		replaced = syscall.Lstat(filepath.Join(np.backingPath(), newName), &st) == nil
	}
	if errno := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags); errno != 0 {
		return errno
	}
	if replaced && st.Nlink <= 1 && flags == 0 {
		n.lfs.forget(st.Ino)
	}
	return 0
}

// handle is an open file: reads and writes go through the page cache.
type handle struct {
	lfs *FS
	fd  int // the backing descriptor; the kernel sends Release after every other request on it

	mu     sync.Mutex
	closed bool // guarded by mu
}

var (
	_ fs.FileReader    = (*handle)(nil)
	_ fs.FileWriter    = (*handle)(nil)
	_ fs.FileFsyncer   = (*handle)(nil)
	_ fs.FileFlusher   = (*handle)(nil)
	_ fs.FileReleaser  = (*handle)(nil)
	_ fs.FileGetattrer = (*handle)(nil)
)

func (h *handle) ino() (uint64, syscall.Errno) {
	var st syscall.Stat_t
	if err := syscall.Fstat(h.fd, &st); err != nil {
		return 0, fs.ToErrno(err)
	}
	return st.Ino, 0
}

// Read serves the page cache laid over the backing file.
func (h *handle) Read(_ context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	ino, errno := h.ino()
	if errno != 0 {
		return nil, errno
	}
	f := h.lfs.lookup(ino)
	if f == nil {
		return fuse.ReadResultFd(uintptr(h.fd), off, len(buf)), 0
	}
	n, errno := f.read(h.fd, buf, off)
	if errno != 0 {
		return nil, errno
	}
	return fuse.ReadResultData(buf[:n]), 0
}

// Write puts data in the page cache only.
func (h *handle) Write(_ context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	f, errno := h.lfs.state(h.fd)
	if errno != 0 {
		return 0, errno
	}
	if errno := f.write(h.fd, data, off); errno != 0 {
		return 0, errno
	}
	h.lfs.count(func(s *Stats) { s.Writes++ })
	return uint32(len(data)), 0
}

// Fsync writes the file's dirty pages and size to the backing file and fsyncs it
// (fsync and fdatasync alike).
func (h *handle) Fsync(_ context.Context, _ uint32) syscall.Errno {
	ino, errno := h.ino()
	if errno != 0 {
		return errno
	}
	pages := 0
	if f := h.lfs.lookup(ino); f != nil {
		if pages, errno = f.sync(h.fd); errno != 0 {
			return errno
		}
	}
	if err := syscall.Fsync(h.fd); err != nil {
		return fs.ToErrno(err)
	}
	h.lfs.count(func(s *Stats) { s.Syncs++; s.SyncedPages += uint64(pages) })
	return 0
}

// Flush (close) makes nothing durable.
func (h *handle) Flush(context.Context) syscall.Errno { return 0 }

// Release closes the backing descriptor; the page cache keeps the file's writes.
func (h *handle) Release(context.Context) syscall.Errno {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return syscall.EBADF
	}
	h.closed = true
	return fs.ToErrno(syscall.Close(h.fd))
}

// Getattr reports the size the file has for its readers.
func (h *handle) Getattr(_ context.Context, out *fuse.AttrOut) syscall.Errno {
	var st syscall.Stat_t
	if err := syscall.Fstat(h.fd, &st); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStat(&st)
	h.fixSize(&out.Attr)
	return 0
}

func (h *handle) fixSize(a *fuse.Attr) {
	var st syscall.Stat_t
	if err := syscall.Fstat(h.fd, &st); err != nil {
		return
	}
	if f := h.lfs.lookup(st.Ino); f != nil {
		f.mu.Lock()
		a.Size = uint64(f.size)
		f.mu.Unlock()
	}
}
