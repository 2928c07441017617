// Package lazyfs is a FUSE file system for power-cut tests, after LazyFS
// (github.com/dsrhaslab/lazyfs). It mirrors a backing directory, but every write to a
// file since that file's last fsync or fdatasync stays in memory: a per-file page
// cache of dirty 4 KiB pages, with reads served from it laid over the backing file.
// An fsync writes the file's dirty pages and its size to the backing file and fsyncs
// it. PowerCut drops every write that was not synced, as a power cut drops the
// operating system's page cache: the backing directory then holds exactly what a
// disk would hold after the power came back.
//
// Mount needs /dev/fuse and the right to mount (root, or fusermount3 from Debian's
// fuse3 package); tests that need it skip with an install hint outside CI.
//
// # Caveats
//
// Only file data and file size are held back. Creating, renaming, linking and
// removing files, and changing their modes and times, reach the backing directory at
// once, as if every directory were fsynced right after each change. Truncation is held
// back like a write. Writes through a shared writable mmap are not supported (bbolt
// maps its file read-only and writes with pwrite). The kernel keeps its own page
// cache of the mount, so after PowerCut the caller unmounts before it looks at the
// files again; a process that still has files open on the mount keeps seeing them as
// before the cut.
//
// The process that serves the mount must not touch it in ways that need the server
// while the Go runtime cannot serve: memory-map a file on it (a page fault can
// deadlock with the garbage collector), or start a child whose working directory is on
// it (the child can hang in chdir between fork and exec). Run such work in another
// process with its working directory elsewhere.
package lazyfs
