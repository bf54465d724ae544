package adminsock

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"

	"github.com/postern/postern/recorder"
)

// maxRequest caps a request body: requests carry a filter, a name or a
// list of session IDs.
const maxRequest = 16 << 20

// rpc registers operation op on s.mux: POST /v1/OP, its JSON body read
// by fn, fn's answer or error written back as JSON.
func (s *Server) rpc(op string, fn func(r *http.Request, dec *json.Decoder) (any, error)) {
	s.mux.HandleFunc("POST /v1/"+op, func(w http.ResponseWriter, r *http.Request) {
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequest))
		out, err := fn(r, dec)
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	})
}

// routes registers the store's operations on s.mux.
func (s *Server) routes() {
	st := s.cfg.Store
	rpc := s.rpc
	rpc("get", func(r *http.Request, dec *json.Decoder) (any, error) {
		var q nameReq
		if err := dec.Decode(&q); err != nil {
			return nil, badRequest(err)
		}
		return st.Get(r.Context(), q.Name)
	})
	rpc("list", func(r *http.Request, dec *json.Decoder) (any, error) {
		var f recorder.Filter
		if err := dec.Decode(&f); err != nil {
			return nil, badRequest(err)
		}
		return st.List(r.Context(), f)
	})
	rpc("prune", func(r *http.Request, dec *json.Decoder) (any, error) {
		var q pruneReq
		if err := dec.Decode(&q); err != nil {
			return nil, badRequest(err)
		}
		return s.prune(r, q.IDs)
	})
	rpc("head", func(r *http.Request, _ *json.Decoder) (any, error) { return st.Head(r.Context()) })
	rpc("snapshot", func(r *http.Request, _ *json.Decoder) (any, error) { return st.Snapshot(r.Context()) })
	rpc("issue", func(r *http.Request, dec *json.Decoder) (any, error) {
		var c recorder.IssuedCert
		if err := dec.Decode(&c); err != nil {
			return nil, badRequest(err)
		}
		return s.issue(r, c)
	})
	rpc("issued", func(r *http.Request, _ *json.Decoder) (any, error) { return st.Issued(r.Context()) })
	s.revokeRoutes()
	rpc("approvals", func(r *http.Request, _ *json.Decoder) (any, error) {
		ai, ok := st.(recorder.ApprovalIndex)
		if !ok {
			return nil, errors.New("this index keeps no approval requests")
		}
		return ai.Approvals(r.Context())
	})
	rpc("files", func(r *http.Request, _ *json.Decoder) (any, error) { return st.Files(r.Context()) })
	rpc("check", func(r *http.Request, dec *json.Decoder) (any, error) {
		var q nameReq
		if err := dec.Decode(&q); err != nil {
			return nil, badRequest(err)
		}
		return struct{}{}, st.Check(r.Context(), q.Name)
	})
	rpc("remove", func(r *http.Request, dec *json.Decoder) (any, error) {
		var q nameReq
		if err := dec.Decode(&q); err != nil {
			return nil, badRequest(err)
		}
		return struct{}{}, st.Remove(r.Context(), q.Name)
	})
	s.mux.HandleFunc("GET /v1/open", func(w http.ResponseWriter, r *http.Request) {
		f, err := st.Open(r.Context(), r.URL.Query().Get("name"))
		if err != nil {
			writeError(w, err)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		io.Copy(w, f) // a failure mid-way shows as a short body
	})
}

type nameReq struct {
	Name string `json:"name"`
}

type pruneReq struct {
	IDs []string `json:"ids"`
}

type pruneResp struct {
	Pruned []recorder.Session  `json:"pruned"`
	Head   *recorder.ChainHead `json:"head"`
}

// Error kinds on the wire: what the client needs to rebuild an error that
// errors.Is and errors.As still match.
const (
	kindNotFound   = "not_found"   // recorder.ErrNotFound
	kindNotExist   = "not_exist"   // matches fs.ErrNotExist
	kindUnsafePath = "unsafe_path" // *recorder.PathError
	kindBadRequest = "bad_request"
	kindOther      = "error"
)

// wireError is an error as the socket carries it.
type wireError struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
	Path    string `json:"path,omitempty"`   // unsafe_path: PathError.Path
	Reason  string `json:"reason,omitempty"` // unsafe_path: PathError.Reason
}

type badRequestError struct{ err error }

func (e badRequestError) Error() string { return "bad admin request: " + e.err.Error() }

func badRequest(err error) error { return badRequestError{err} }

func writeError(w http.ResponseWriter, err error) {
	we := wireError{Kind: kindOther, Message: err.Error()}
	status := http.StatusInternalServerError
	var pe *recorder.PathError
	switch {
	case errors.As(err, &pe):
		we.Kind, we.Path, we.Reason, status = kindUnsafePath, pe.Path, pe.Reason, http.StatusForbidden
	case errors.Is(err, recorder.ErrNotFound):
		we.Kind, status = kindNotFound, http.StatusNotFound
	case errors.Is(err, fs.ErrNotExist):
		we.Kind, status = kindNotExist, http.StatusNotFound
	case errors.As(err, new(badRequestError)):
		we.Kind, status = kindBadRequest, http.StatusBadRequest
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(we)
}
