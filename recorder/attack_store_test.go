package recorder

// Attack tests for the store refactor (index behind interfaces, verify over
// a snapshot, prune, the register of issued certificates).
//
// The first part holds tests that FAIL on the code as it stands: each is a
// way through, with what a fix must make true. The second part holds
// defences that held, kept as regression tests.

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ---------------------------------------------------------------------
// Ways through (fail now).
// ---------------------------------------------------------------------

// TestAttackStoreCertResealedAfterAnchor: HOLE (README: "A session is
// sealed once, so an older recording edited and sealed again with the audit
// key is reported too"; --anchor "covers every change up to it"). The same
// protection is missing for certificates: an insider with the audit key
// edits an old, anchored certificate record (here: who issued it and to
// which principals) and appends a second KindCertificate seal for the same
// serial. The anchor still holds (the chain only grew), the later seal
// overwrites the first in verify's map, and verify reports nothing. A
// certificate is issued once; a second seal for a serial must be reported.
func TestAttackStoreCertResealedAfterAnchor(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	c, err := s.IssueCert(t.Context(), IssuedCert{KeyID: "mallory-root", Principals: []string{"root"}, IssuedBy: "mallory"})
	if err != nil {
		t.Fatal(err)
	}
	record(t, s, "01A-1", "later\r\n")
	rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("clean: %v %v", rep.Problems, err)
	}
	anchor := *rep.Head
	// The insider rewrites the anchored record and seals it anew.
	c.Principals, c.IssuedBy, c.KeyID = []string{"alice"}, "alice", "alice-laptop"
	err = s.update(t.Context(), func(tx *bolt.Tx) error {
		data, _ := json.Marshal(c)
		if err := tx.Bucket(bucketCerts).Put(seqKey(c.Serial), data); err != nil {
			return err
		}
		_, err := s.appendChain(tx, ChainEntry{Kind: KindCertificate, Serial: c.Serial, Record: recordDigest(data)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err = VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey(), Anchors: []ChainHead{anchor}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) == 0 {
		t.Fatalf("certificate %d re-sealed with an edited record after anchor %s: verify reports nothing", c.Serial, anchor)
	}
}

// TestAttackStoreForgedActiveEntryLaundered: HOLE (invariant 4; verify
// "names each file ... added"). An index entry with status "active" is
// never checked against the chain (it is "in progress"), and the path it
// names counts as referenced. An insider who can write postern.db but has
// no audit key inserts an active entry for a session that never happened
// ("alice" on db01) and writes a recording for it: verify reports nothing,
// neither the entry nor the file. At the next start MarkInterrupted seals
// whatever it finds active with the bastion's key, so the forgery becomes
// a properly signed "interrupted" session, indistinguishable from a real
// one. An active entry needs evidence the bastion made it (e.g. a chain
// entry at Begin), and verify and MarkInterrupted must refuse one without.
func TestAttackStoreForgedActiveEntryLaundered(t *testing.T) {
	t.Parallel()
	s, dir := newStore(t)
	record(t, s, "01A-1", "genuine\r\n")
	forged := Session{ID: "01F-1", Session: "01F-1", Identity: "alice", Target: "db01", Login: "root", Kind: "shell",
		Start: time.Now().Add(-time.Hour), Path: filepath.Join("recordings", "2026", "11", "25", "01F-1.cast"), Status: StatusActive}
	if err := s.update(t.Context(), func(tx *bolt.Tx) error { return putJSON(tx, forged.ID, forged) }); err != nil {
		t.Fatal(err)
	}
	writeCast(t, filepath.Join(dir, forged.Path), "alice@db01:~# DROP TABLE payments;\r\n")

	rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) == 0 {
		t.Errorf("forged active index entry and its planted recording: verify reports nothing")
	}
	// The next start seals it.
	ids, err := s.MarkInterrupted(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rep, err = VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) == 0 {
		t.Errorf("MarkInterrupted sealed the forged entry %v with the bastion's key; verify now reports nothing", ids)
	}
}

// TestAttackStorePruneTrustsEditedEnd: HOLE (README: prune "deletes
// recordings older than recording.retention_days"; an edited entry "is
// evidence that the index was edited; deleting it under cover of retention
// would erase that"). PruneCandidates judges age by the index entry's End,
// which anyone who can write postern.db can edit, and never compares the
// entry with its seal. An insider back-dates yesterday's session by two
// years; the next scheduled `recordings prune` deletes its recording and
// index entry and seals the deletion with the bastion's key, and verify is
// clean: the evidence is gone, with a valid chain entry to show for it. Prune
// must leave an entry whose record does not match its seal alone (and
// report it), and judge age by the seal.
func TestAttackStorePruneTrustsEditedEnd(t *testing.T) {
	t.Parallel()
	s, dir := newStore(t)
	record(t, s, "01A-1", "keep me\r\n")
	rec := record(t, s, "01B-1", "evidence\r\n")
	old := time.Now().AddDate(-2, 0, 0)
	rec.Start, rec.End = old.Add(-time.Minute), &old
	if err := s.update(t.Context(), func(tx *bolt.Tx) error { return putJSON(tx, rec.ID, rec) }); err != nil {
		t.Fatal(err)
	}
	// Before the prune, verify sees the edit.
	if rep, _ := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()}); len(rep.Problems) != 1 || rep.Problems[0].Reason != "index entry edited" {
		t.Fatalf("edited entry before prune: %v", rep.Problems)
	}
	pruned, _, err := Prune(t.Context(), s, time.Now().AddDate(-1, 0, 0))
	for _, p := range pruned {
		if p.ID == rec.ID {
			t.Errorf("retention (365 days) pruned session %s, sealed a moment ago, because its index entry was back-dated (err %v)", rec.ID, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, rec.Path)); err != nil {
		t.Errorf("recording of the back-dated session deleted: %v", err)
	}
	rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) == 0 {
		t.Errorf("after the prune verify is clean: the edit and the evidence are both gone")
	}
}

// TestAttackStoreVerifyRacesPrune: HOLE (README: verify lists then
// snapshots "so a session that starts meanwhile is never reported"; a busy
// bastion must not make verify cry wolf). The nightly prune running while
// verify digests the recordings (which takes minutes on a big bastion)
// deletes files that verify's snapshot still has sealed: verify reports
// them "deleted", on a bastion nobody tampered with. The interleaving is
// made deterministic here: the prune runs right after the snapshot is
// taken. A file gone because a later chain entry prunes it is not a
// problem.
func TestAttackStoreVerifyRacesPrune(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	rec := record(t, s, "01A-1", "old\r\n")
	record(t, s, "01B-1", "new\r\n")
	ps := &pruneAfterSnapshot{Local: s, ids: []string{rec.ID}}
	rep, err := VerifyStore(t.Context(), ps, VerifyOptions{Key: s.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	if !ps.pruned {
		t.Fatal("the concurrent prune did not run")
	}
	if len(rep.Problems) != 0 {
		t.Fatalf("verify during a legitimate prune reports %v", rep.Problems)
	}
	// And the store is indeed clean afterwards.
	if rep, _ := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()}); len(rep.Problems) != 0 {
		t.Fatalf("after the prune: %v", rep.Problems)
	}
}

// pruneAfterSnapshot is a Store whose Snapshot is followed at once by a
// prune of ids, as a `recordings prune` running at that moment would do.
type pruneAfterSnapshot struct {
	*Local
	ids    []string
	pruned bool
}

func (p *pruneAfterSnapshot) Snapshot(ctx context.Context) (*Snapshot, error) {
	snap, err := p.Local.Snapshot(ctx)
	if err == nil && !p.pruned {
		p.pruned = true
		recs, _, perr := p.Local.Prune(ctx, p.ids)
		for _, r := range recs {
			if rerr := p.Local.Remove(ctx, r.Path); rerr != nil && perr == nil {
				perr = rerr
			}
		}
		if perr != nil {
			return nil, perr
		}
	}
	return snap, err
}

// TestAttackStoreSerialReuseAfterRestore: HOLE (README: "Each certificate's
// serial comes from the index's register of issued certificates, so none is
// reused"). The serial is the bucket's sequence inside postern.db: restore
// an older copy of the file (a backup restore after a disk failure, or an
// insider rolling the index back) and the next `ca sign` hands out serials
// that were already issued, to other people. Revocation by serial then
// hits both, and the register no longer names the first holder. A serial
// must not depend on the index file alone (e.g. time-based high bits, or a
// random 64-bit value checked against the register).
func TestAttackStoreSerialReuseAfterRestore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := newStoreAt(t, dir)
	for range 2 {
		if _, err := s.IssueCert(t.Context(), IssuedCert{KeyID: "before backup", Principals: []string{"alice"}}); err != nil {
			t.Fatal(err)
		}
	}
	key := s.key
	s.Close()
	db := filepath.Join(dir, "postern.db")
	backup, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	s, err = OpenStore(dir, Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	issued := map[uint64]string{}
	for _, who := range []string{"bob", "carol"} {
		c, err := s.IssueCert(t.Context(), IssuedCert{KeyID: who, Principals: []string{who}})
		if err != nil {
			t.Fatal(err)
		}
		issued[c.Serial] = who
	}
	s.Close()
	if err := os.WriteFile(db, backup, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = OpenStore(dir, Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.IssueCert(t.Context(), IssuedCert{KeyID: "dave", Principals: []string{"dave"}})
	if err != nil {
		t.Fatal(err)
	}
	if who, ok := issued[c.Serial]; ok {
		t.Fatalf("after restoring an older index, serial %d went to dave; it was issued to %s before", c.Serial, who)
	}
}

func newStoreAt(t *testing.T, dir string) (*Local, string) {
	t.Helper()
	s, _ := newStore(t)
	key := s.key
	s.Close()
	st, err := OpenStore(dir, Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return st, dir
}

// TestAttackStoreCertRecordUnderOddKey: HOLE (README: verify checks
// "every issued certificate's record"). Snapshot copies only the
// certificate records whose key is 8 bytes long; Issued lists every record
// in the bucket. An insider who can write postern.db (no audit key) adds a
// record under a 9-byte key: `postern ca issued` shows a certificate that
// was never issued (here a second serial 1, for root, "issued by alice"),
// and verify, which never sees it, reports nothing. Every record in the
// bucket must reach verify, and one under a key that is not a serial be
// reported.
func TestAttackStoreCertRecordUnderOddKey(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	if _, err := s.IssueCert(t.Context(), IssuedCert{KeyID: "bob", Principals: []string{"bob"}, IssuedBy: "carol"}); err != nil {
		t.Fatal(err)
	}
	err := s.update(t.Context(), func(tx *bolt.Tx) error {
		data, _ := json.Marshal(IssuedCert{Serial: 1, KeyID: "root-key", Principals: []string{"root"}, IssuedBy: "alice"})
		return tx.Bucket(bucketCerts).Put(append(seqKey(1), 0), data)
	})
	if err != nil {
		t.Fatal(err)
	}
	list, _ := s.Issued(t.Context())
	rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) == 0 {
		t.Fatalf("a forged certificate record under a 9-byte key: ca issued lists %d certificates (%+v), verify reports nothing", len(list), list)
	}
}
