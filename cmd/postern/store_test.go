package main

import (
	"context"
	"crypto/ed25519"
	"time"

	"github.com/postern/postern/recorder"
)

// testStore seals sessions in a data directory as a bastion would, but
// opens the index for each operation only, so that the admin commands a
// test runs (other processes, with no server) can open it in between.
type testStore struct {
	dir string
	key ed25519.PrivateKey
}

func openTestStore(dir string, key ed25519.PrivateKey) *testStore {
	return &testStore{dir: dir, key: key}
}

// Dir is the data directory.
func (s *testStore) Dir() string { return s.dir }

func (s *testStore) with(fn func(*recorder.Local) error) error {
	return s.at(nil, fn)
}

// at is with, the chain's clock set to now (nil: time.Now).
func (s *testStore) at(now func() time.Time, fn func(*recorder.Local) error) error {
	st, err := recorder.OpenStore(s.dir, recorder.Options{Key: s.key, Now: now})
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st)
}

func (s *testStore) Begin(rec recorder.Session) error {
	return s.with(func(st *recorder.Local) error { return st.Begin(context.Background(), rec) })
}

// Finish seals rec as a bastion would when it ends: at rec.End, which a
// test may set in the past (prune judges age by the seal's time).
func (s *testStore) Finish(rec recorder.Session) (recorder.ChainHead, error) {
	var now func() time.Time
	if rec.End != nil {
		now = func() time.Time { return *rec.End }
	}
	var h recorder.ChainHead
	err := s.at(now, func(st *recorder.Local) (err error) {
		h, err = st.Finish(context.Background(), rec)
		return err
	})
	return h, err
}

func (s *testStore) Get(id string) (recorder.Session, error) {
	var rec recorder.Session
	err := s.with(func(st *recorder.Local) (err error) {
		rec, err = st.Get(context.Background(), id)
		return err
	})
	return rec, err
}
