package recorder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"

	berrors "go.etcd.io/bbolt/errors"
)

// The index file's layout, as bbolt (file format version 2) writes it:
// pages of pageSize bytes, each with a 16-byte header (id u64, flags u16,
// count u16, overflow u32; integers in the machine's byte order); pages 0
// and 1 are meta pages; element tables of 16-byte entries follow the
// header of branch and leaf pages, each element's key (and value) at an
// offset from the element itself. walkFile reads it with plain reads,
// never through bbolt's memory map, so that a damaged file cannot fault.
const (
	pageHeader      = 16
	pageElement     = 16
	flagBranch      = 0x01
	flagLeaf        = 0x02
	flagMeta        = 0x04
	flagFreelist    = 0x10
	leafBucket      = 0x01
	boltMagic       = 0xED0CDAED
	boltVersion     = 2
	noFreelist      = ^uint64(0)
	metaChecksumEnd = 56 // the meta's bytes the checksum covers
	maxTreeDepth    = 64
	maxPageProblems = 20
)

var ne = binary.NativeEndian

// boltMeta is one meta page's content.
type boltMeta struct {
	pageSize uint32
	root     uint64 // the root bucket's page
	freelist uint64
	pages    uint64 // the high water mark: pages in use are below it
	txid     uint64
}

// readMeta decodes the meta page in buf (a page from its start), or says
// why it is not one.
func readMeta(buf []byte) (boltMeta, error) {
	if len(buf) < pageHeader+metaChecksumEnd+8 {
		return boltMeta{}, errors.New("too short for a meta page")
	}
	m := buf[pageHeader:]
	h := fnv.New64a()
	h.Write(m[:metaChecksumEnd])
	switch {
	case ne.Uint16(buf[8:]) != flagMeta:
		return boltMeta{}, errors.New("not a meta page")
	case ne.Uint32(m[0:]) != boltMagic:
		return boltMeta{}, errors.New("no bbolt magic number")
	case ne.Uint32(m[4:]) != boltVersion:
		return boltMeta{}, fmt.Errorf("bbolt file format version %d, not %d", ne.Uint32(m[4:]), boltVersion)
	case ne.Uint64(m[metaChecksumEnd:]) != h.Sum64():
		return boltMeta{}, errors.New("checksum mismatch")
	}
	return boltMeta{pageSize: ne.Uint32(m[8:]), root: ne.Uint64(m[16:]), freelist: ne.Uint64(m[32:]),
		pages: ne.Uint64(m[40:]), txid: ne.Uint64(m[48:])}, nil
}

// fileMeta reads the index file f's meta pages and returns the one bbolt
// would use: the valid one of the higher transaction. A file with neither,
// or shorter than the pages its meta says it holds, is a *CorruptError.
func fileMeta(path string, f *os.File, size int64) (boltMeta, error) {
	corrupt := func(format string, a ...any) (boltMeta, error) {
		return boltMeta{}, &CorruptError{Path: path, Detail: fmt.Sprintf(format, a...)}
	}
	if size == 0 {
		return corrupt("the file is empty")
	}
	buf := make([]byte, 4096)
	n, _ := f.ReadAt(buf, 0)
	m0, err0 := readMeta(buf[:n])
	var m1 boltMeta
	err1 := errors.New("not found")
	// The second meta page starts one page in: where, m0 says, or,
	// without it, at one of the page sizes bbolt uses.
	sizes := []int64{4096, 8192, 16384, 32768, 65536}
	if err0 == nil && m0.pageSize >= 1024 && m0.pageSize <= 1<<20 {
		sizes = []int64{int64(m0.pageSize)}
	}
	for _, off := range sizes {
		if n, _ := f.ReadAt(buf, off); n > 0 {
			if m1, err1 = readMeta(buf[:n]); err1 == nil {
				break
			}
		}
	}
	m := m0
	switch {
	case err0 != nil && err1 != nil:
		return corrupt("neither meta page is sound: %v; %v", err0, err1)
	case err0 != nil || (err1 == nil && m1.txid > m0.txid):
		m = m1
	}
	switch ps := int64(m.pageSize); {
	case ps < 1024 || ps > 1<<20 || ps&(ps-1) != 0:
		return corrupt("its meta page names a page size of %d bytes", ps)
	case m.pages < 2 || m.pages > uint64(size)/uint64(ps):
		return corrupt("truncated: its meta page says it holds %d pages of %d bytes (%d bytes), the file has %d bytes", m.pages, ps, m.pages*uint64(ps), size)
	case m.root < 2 || m.root >= m.pages:
		return corrupt("its meta page names root page %d, outside the %d pages in use", m.root, m.pages)
	case m.freelist != noFreelist && (m.freelist < 2 || m.freelist >= m.pages):
		return corrupt("its meta page names freelist page %d, outside the %d pages in use", m.freelist, m.pages)
	}
	return m, nil
}

// scanFile reads the index file at path without bbolt, holding a shared
// lock on it (as a bbolt reader does) for up to timeout: its meta pages,
// its length against the pages they name, and every page (walkFile). It
// returns the meta and the problems found; an error is an I/O error, or
// ErrTimeout when a writer holds the file. A missing file has neither
// meta nor problems.
func scanFile(path string, timeout time.Duration) (boltMeta, []string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return boltMeta{}, nil, nil
	}
	if err != nil {
		return boltMeta{}, nil, err
	}
	defer f.Close()
	unlock, err := lockShared(f, timeout)
	if err != nil {
		return boltMeta{}, nil, err
	}
	defer unlock() // before Close (see lockShared)
	fi, err := f.Stat()
	if err != nil {
		return boltMeta{}, nil, err
	}
	m, err := fileMeta(path, f, fi.Size())
	var ce *CorruptError
	if errors.As(err, &ce) {
		return m, []string{ce.Detail}, nil
	}
	if err != nil {
		return m, nil, err
	}
	return m, walkFile(f, m), nil
}

// lockShared takes a shared flock on f, as bbolt's readers do (bbolt's
// writer takes it exclusively), trying until timeout, and returns what
// releases it, to be called before f is closed: closing alone leaves the
// lock to any process forked meanwhile by another goroutine, which holds
// the open file until it execs, and bbolt's writer opening the index
// right after the scan (OpenStore) waits for that.
func lockShared(f *os.File, timeout time.Duration) (unlock func(), err error) {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, berrors.ErrTimeout
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// preflight is what OpenStore checks before bbolt maps the index file at
// path (see scanFile): with nothing past the end of the file and no page
// number out of range or leading in a circle, bbolt's reads cannot fault
// or loop for ever, and its writer's loading of the freelist cannot ask
// for more memory than the file holds. Damage is a *CorruptError.
func preflight(path string, timeout time.Duration) error {
	_, problems, err := scanFile(path, timeout)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return &CorruptError{Path: path, Detail: summary(problems)}
	}
	return nil
}

// summary is the first of problems, and how many more there are.
func summary(problems []string) string {
	switch n := len(problems) - 1; n {
	case 0:
		return problems[0]
	case 1:
		return problems[0] + ", and 1 more problem"
	default:
		return fmt.Sprintf("%s, and %d more problems", problems[0], n)
	}
}

// pageWalk checks the pages of an index file as bbolt's Tx.Check would
// read them, but with plain reads and every number checked before it is
// used: page numbers below the high water mark, element tables, keys and
// values inside their page, each page reached once (no cycle), the tree
// no deeper than maxTreeDepth, the freelist's page numbers in range. When
// it finds nothing, bbolt can walk the same pages without faulting.
type pageWalk struct {
	r        io.ReaderAt
	meta     boltMeta
	psz      uint64
	reached  []bool // by page number
	freed    []bool
	problems []string
}

// walkFile walks the index file f (size bytes, meta m) and returns the
// problems found, at most maxPageProblems of them and a count of the rest.
func walkFile(r io.ReaderAt, m boltMeta) []string {
	w := &pageWalk{r: r, meta: m, psz: uint64(m.pageSize), reached: make([]bool, m.pages), freed: make([]bool, m.pages)}
	w.reached[0], w.reached[1] = true, true
	w.freelist()
	w.tree(m.root, 0)
	unreached := 0
	for id := uint64(2); id < m.pages && m.freelist != noFreelist; id++ {
		if !w.reached[id] && !w.freed[id] {
			if unreached == 0 {
				w.add("page %d: neither in use nor free (and maybe more)", id)
			}
			unreached++
		}
	}
	if unreached > 1 {
		w.add("%d pages neither in use nor free", unreached)
	}
	if n := len(w.problems); n > maxPageProblems {
		w.problems = append(w.problems[:maxPageProblems], fmt.Sprintf("and %d more", n-maxPageProblems))
	}
	return w.problems
}

func (w *pageWalk) add(format string, a ...any) {
	w.problems = append(w.problems, fmt.Sprintf(format, a...))
}

// pageView is the part of a page walkFile reads: for a leaf, only the
// header and element table (and a bucket's value when an element is one),
// since bbolt's cursor reads nothing else that could lead elsewhere.
type pageView struct {
	id   uint64
	buf  []byte // from the page's start: header, element table, and for a branch or an inline page all of it
	size int    // of the whole page, overflow included
	at   int64  // file offset of the page; -1 for a page inside a value (then buf is all of it)
}

// value returns n bytes at off of the page.
func (w *pageWalk) value(p pageView, off, n int) []byte {
	if p.at < 0 {
		return p.buf[off : off+n]
	}
	b := make([]byte, n)
	if _, err := w.r.ReadAt(b, p.at+int64(off)); err != nil {
		return nil
	}
	return b
}

// page reads page id (see pageView), marking it and its overflow pages
// reached; ok false (with the problem added) when it cannot be used.
func (w *pageWalk) page(id uint64, what string) (p pageView, ok bool) {
	if id < 2 || id >= w.meta.pages {
		w.add("%s: page %d is outside the %d pages in use", what, id, w.meta.pages)
		return p, false
	}
	p = pageView{id: id, at: int64(id * w.psz), buf: make([]byte, pageHeader)}
	if _, err := w.r.ReadAt(p.buf, p.at); err != nil {
		w.add("%s: page %d unreadable: %v", what, id, err)
		return p, false
	}
	overflow := uint64(ne.Uint32(p.buf[12:]))
	switch {
	case ne.Uint64(p.buf[0:]) != id:
		w.add("%s: page %d says it is page %d", what, id, ne.Uint64(p.buf[0:]))
		return p, false
	case id+overflow >= w.meta.pages:
		w.add("%s: page %d runs %d pages past the %d in use", what, id, id+overflow+1-w.meta.pages, w.meta.pages)
		return p, false
	}
	for n := id; n <= id+overflow; n++ {
		if w.reached[n] {
			w.add("%s: page %d reached twice", what, n)
			return p, false
		}
		w.reached[n] = true
	}
	p.size = int((overflow + 1) * w.psz)
	n := p.size
	if ne.Uint16(p.buf[8:]) == flagLeaf {
		n = min(n, pageHeader+int(ne.Uint16(p.buf[10:]))*pageElement)
	}
	p.buf = make([]byte, n)
	if _, err := w.r.ReadAt(p.buf, p.at); err != nil {
		w.add("%s: page %d unreadable: %v", what, id, err)
		return p, false
	}
	return p, true
}

// freelist reads the free pages' numbers.
func (w *pageWalk) freelist() {
	if w.meta.freelist == noFreelist {
		return
	}
	p, ok := w.page(w.meta.freelist, "freelist")
	if !ok {
		return
	}
	buf := p.buf
	if f := ne.Uint16(buf[8:]); f != flagFreelist {
		w.add("freelist: page %d has flags %#x, not a freelist's", w.meta.freelist, f)
		return
	}
	start, count := uint64(pageHeader), uint64(ne.Uint16(buf[10:]))
	if count == 0xFFFF {
		count, start = ne.Uint64(buf[pageHeader:]), pageHeader+8
	}
	if count > (uint64(len(buf))-start)/8 {
		w.add("freelist: %d page numbers do not fit in its %d bytes", count, len(buf))
		return
	}
	for i := range count {
		id := ne.Uint64(buf[start+8*i:])
		switch {
		case id < 2 || id >= w.meta.pages:
			w.add("freelist: free page %d outside the %d pages in use", id, w.meta.pages)
		case w.freed[id]:
			w.add("freelist: page %d freed twice", id)
		default:
			w.freed[id] = true
		}
	}
}

// tree walks the branch or leaf page id and what it leads to.
func (w *pageWalk) tree(id uint64, depth int) {
	if depth > maxTreeDepth {
		w.add("page %d: tree deeper than %d levels", id, maxTreeDepth)
		return
	}
	p, ok := w.page(id, "tree")
	if !ok {
		return
	}
	if w.freed[id] {
		w.add("page %d: in use and free", id)
	}
	w.elements(p, depth)
}

// elements checks the element table of page p and walks what its
// elements point to.
func (w *pageWalk) elements(p pageView, depth int) {
	flags, count := ne.Uint16(p.buf[8:]), int(ne.Uint16(p.buf[10:]))
	if flags != flagBranch && flags != flagLeaf {
		w.add("page %d: flags %#x, neither branch nor leaf", p.id, flags)
		return
	}
	if pageHeader+count*pageElement > len(p.buf) {
		w.add("page %d: %d elements do not fit in %d bytes", p.id, count, p.size)
		return
	}
	for i := range count {
		at := pageHeader + i*pageElement
		e := p.buf[at:]
		var pos, ksize, vsize int
		if flags == flagBranch {
			pos, ksize = int(ne.Uint32(e[0:])), int(ne.Uint32(e[4:]))
		} else {
			pos, ksize, vsize = int(ne.Uint32(e[4:])), int(ne.Uint32(e[8:])), int(ne.Uint32(e[12:]))
		}
		if at+pos+ksize+vsize > p.size || ksize == 0 {
			w.add("page %d: element %d (key %d bytes, value %d) lies outside its page", p.id, i, ksize, vsize)
			return
		}
		switch {
		case flags == flagBranch:
			w.tree(ne.Uint64(e[8:]), depth+1)
		case ne.Uint32(e[0:])&leafBucket != 0:
			w.bucket(p.id, i, w.value(p, at+pos+ksize, vsize), depth)
		}
	}
}

// bucket walks the bucket whose header is value (element i of page id).
func (w *pageWalk) bucket(id uint64, i int, value []byte, depth int) {
	if len(value) < 16 {
		w.add("page %d: element %d is a bucket of %d bytes, too short", id, i, len(value))
		return
	}
	if root := ne.Uint64(value); root != 0 {
		w.tree(root, depth+1)
		return
	}
	inline := value[16:]
	if len(inline) < pageHeader || depth+1 > maxTreeDepth {
		w.add("page %d: element %d is an inline bucket too short or too deep", id, i)
		return
	}
	if ne.Uint16(inline[8:]) != flagLeaf {
		w.add("page %d: element %d is an inline bucket whose page is not a leaf", id, i)
		return
	}
	w.elements(pageView{id: id, buf: inline, size: len(inline), at: -1}, depth+1)
}
