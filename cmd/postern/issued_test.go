package main

import (
	enc "encoding/binary"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

// TestCASignRecordsSerial: without a server, ca sign takes each serial from
// the index's register, never the same twice, writes a cert_issued audit
// record, and ca issued lists what was issued; the register is sealed in
// the audit chain, so an edited record fails verify.
func TestCASignRecordsSerial(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if code, _, errs := runCLI(t, "ca", "init", "--data-dir", data); code != 0 {
		t.Fatalf("ca init: exit %d: %s", code, errs)
	}
	_, key := testenv.NewKey(t, dir, "alice")
	var serials []uint64
	for range 2 {
		code, out, errs := runCLI(t, "ca", "sign", "--data-dir", data, "--principal", "alice", "--group", "dba", "--ttl", "2h", "--out", "-", key+".pub")
		if code != 0 {
			t.Fatalf("ca sign: exit %d: %s", code, errs)
		}
		cert := parseCert(t, []byte(out))
		serials = append(serials, cert.Serial)
		var rec struct {
			Event       string    `json:"event"`
			Serial      uint64    `json:"serial"`
			Principals  []string  `json:"principals"`
			IssuedBy    string    `json:"issued_by"`
			ValidBefore time.Time `json:"valid_before"`
		}
		line := errs[strings.Index(errs, "{"):]
		line = line[:strings.Index(line, "\n")]
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Event != "cert_issued" || rec.Serial != cert.Serial ||
			len(rec.Principals) != 1 || rec.IssuedBy == "" || rec.ValidBefore.Unix() != int64(cert.ValidBefore) {
			t.Fatalf("audit record %+v (%v) for certificate serial %d: %s", rec, err, cert.Serial, errs)
		}
	}
	if serials[0] == serials[1] {
		t.Fatalf("two certificates with serial %d", serials[0])
	}
	// A refused request takes no serial.
	if code, _, _ := runCLI(t, "ca", "sign", "--data-dir", data, "--principal", "alice", "--source-address", "not-an-address", key+".pub"); code != 1 {
		t.Fatalf("ca sign with a bad source address: exit %d", code)
	}
	code, out, errs := runCLI(t, "ca", "issued", "--data-dir", data, "--json")
	var issued []recorder.IssuedCert
	if err := json.Unmarshal([]byte(out), &issued); code != 0 || err != nil || len(issued) != 2 ||
		issued[0].Serial != serials[0] || issued[1].Serial != serials[1] || issued[0].Groups[0] != "dba" {
		t.Fatalf("ca issued --json: exit %d %v %s %s", code, err, out, errs)
	}
	if code, out, _ := runCLI(t, "ca", "issued", "--data-dir", data); code != 0 || !strings.Contains(out, "SERIAL") || strings.Count(out, "alice") != 4 {
		t.Fatalf("ca issued: exit %d\n%s", code, out)
	}
	if code, out, errs := runCLI(t, "verify", "--data-dir", data); code != 0 || !strings.Contains(out, "2 audit chain entries") {
		t.Fatalf("verify: exit %d %s %s", code, out, errs)
	}
	// Someone with the database edits who got the first certificate.
	db, err := bolt.Open(filepath.Join(data, "postern.db"), 0o600, &bolt.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		var k [8]byte
		enc.BigEndian.PutUint64(k[:], serials[0])
		b := tx.Bucket([]byte("certs"))
		return b.Put(k[:], []byte(strings.Replace(string(b.Get(k[:])), "alice", "mallory", -1)))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runCLI(t, "verify", "--data-dir", data); code != 1 || !strings.Contains(out, "certificate record edited") {
		t.Fatalf("verify after an edited certificate record: exit %d %s", code, out)
	}
}
