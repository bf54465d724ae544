package api

import (
	"bytes"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/audit"
	"github.com/postern/postern/recorder"
)

// certRequest is POST /v1/certificates' body.
type certRequest struct {
	IDToken   string `json:"id_token"`
	PublicKey string `json:"public_key"`
	TTL       string `json:"ttl,omitempty"`
	Nonce     string `json:"nonce,omitempty"`
}

// certResponse is its answer.
type certResponse struct {
	Certificate string    `json:"certificate"`
	Identity    string    `json:"identity"`
	Principals  []string  `json:"principals"`
	Groups      []string  `json:"groups"`
	Serial      uint64    `json:"serial"`
	ValidAfter  time.Time `json:"valid_after"`
	ValidBefore time.Time `json:"valid_before"`
}

// issuedBy names the API in the register of issued certificates.
const issuedBy = "login"

// refusal is a refused request: status and message for the requester,
// reason for the audit trail, and what was known of the request.
type refusal struct {
	status   int
	reason   string
	message  string
	identity string
	subject  string
	key      string // fingerprint
	ttl      string
	// retryAfter, if not 0, is sent as Retry-After (seconds).
	retryAfter int
	// identityLimited says the identity's issuance limit refused it:
	// not a failure of the client's address. unsealed says it is logged
	// without a sealed record (one was sealed for this bout already).
	identityLimited, unsealed bool
	// repeats, if not 0, is the number of this refusal in its bout: it
	// is logged only when a power of two.
	repeats int
}

// certificates serves POST /v1/certificates.
func (a *API) certificates(w http.ResponseWriter, r *http.Request) {
	now := a.cfg.Now()
	client := clientAddr(r)
	if wait, first, ok := a.limit.blocked(client, now); ok {
		secs := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		ref := &refusal{status: http.StatusTooManyRequests,
			reason:  fmt.Sprintf("rate limited: %d failed requests within %s", a.cfg.MaxFailures, a.cfg.FailureWindow),
			message: fmt.Sprintf("too many failed requests from your address; try again in %d seconds", secs)}
		if first {
			// Later requests in this window are refused without
			// a record each (the limiter says so).
			a.record(r, client, ref)
		}
		writeError(w, ref.status, ref.message)
		return
	}
	resp, ref := a.issue(r, w, client, now)
	if ref != nil {
		if ref.status < 500 && !ref.identityLimited {
			a.limit.fail(client, now)
		}
		if ref.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(ref.retryAfter))
		}
		a.record(r, client, ref)
		writeError(w, ref.status, ref.message)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// issue checks the request and issues the certificate, or says why not.
func (a *API) issue(r *http.Request, w http.ResponseWriter, client netip.Addr, now time.Time) (*certResponse, *refusal) {
	req, pub, ttl, ref := a.parse(r, w)
	if ref != nil {
		return nil, ref
	}
	fp := ssh.FingerprintSHA256(pub)
	asked := "" // the TTL asked for, as the bastion writes it
	if req.TTL != "" {
		asked = ttl.String()
	}
	login, err := a.cfg.OIDC.Verify(r.Context(), req.IDToken, req.Nonce)
	if err != nil {
		ref := &refusal{status: http.StatusUnauthorized, reason: err.Error(), message: err.Error(), key: fp, ttl: asked}
		var le *certs.LoginError
		if errors.As(err, &le) {
			ref.message, ref.identity, ref.subject = le.UserMessage(), le.Identity, le.Subject
			switch le.Kind {
			case certs.IdentityRefused:
				ref.status = http.StatusForbidden
			case certs.ProviderUnavailable:
				ref.status = http.StatusServiceUnavailable
			}
		}
		return nil, ref
	}
	refuse := func(status int, reason, msg string) *refusal {
		return &refusal{status: status, reason: reason, message: msg, identity: login.Identity, key: fp, ttl: asked}
	}
	// A key ID revoked for good (ca revoke --identity) gets no new
	// certificate: the bastion would refuse it anyway.
	if a.cfg.Revoked != nil && a.cfg.Revoked(login.Identity) {
		return nil, refuse(http.StatusForbidden, "identity revoked", "certificates for "+login.Identity+" are revoked on this bastion; ask an admin")
	}
	if ref := a.fresh(login, now, refuse); ref != nil {
		return nil, ref
	}
	keys := limitKeys(login)
	if ref := a.rate(login.Identity, keys, now, refuse); ref != nil {
		return nil, ref
	}
	resp, ref := a.sign(r, client, now, pub, ttl, login, refuse)
	if ref != nil {
		// Only certificates issued count: a replayed token, or a
		// failure of the bastion's, leaves the buckets as they were.
		a.issues.refund(keys...)
	}
	return resp, ref
}

// limitKeys names the buckets of the issuance limit a certificate for
// login takes from: its identity's, and its account's at the provider
// (sub, which its holder cannot change): an identity claim its holder can
// change (alice+1@…), or that the provider spells as typed (case, Unicode
// normalisation), is no way round the limit.
func limitKeys(login *certs.OIDCLogin) []string {
	return []string{"identity " + login.Identity, "subject " + login.Subject}
}

// rate takes a certificate from the buckets keys of identity id, or refuses
// with 429 and how long to wait; the first refusal since id's last issue
// is sealed, and of the later ones the 2nd, 4th, 8th… are logged with
// their count: they do not count against the address, so one client
// could otherwise write a log line per request for as long as it likes.
func (a *API) rate(id string, keys []string, now time.Time, refuse func(int, string, string) *refusal) *refusal {
	wait, n, ok := a.issues.takeAll(keys, now)
	if ok {
		return nil
	}
	secs := int((wait + time.Second - 1) / time.Second)
	ref := refuse(http.StatusTooManyRequests,
		fmt.Sprintf("issue rate limited: a burst of %d certificates, then one every %s, per identity", a.cfg.IssueBurst, a.cfg.IssueInterval),
		fmt.Sprintf("too many certificates for %s: this bastion issues at most %d to one identity at once, then one every %s", id, a.cfg.IssueBurst, a.cfg.IssueInterval))
	ref.retryAfter, ref.identityLimited, ref.unsealed = secs, true, n > 1
	if n > 1 {
		ref.repeats = n
	}
	return ref
}

// sign claims login's token and issues the certificate for pub, or says
// why not.
func (a *API) sign(r *http.Request, client netip.Addr, now time.Time, pub ssh.PublicKey, ttl time.Duration, login *certs.OIDCLogin,
	refuse func(int, string, string) *refusal) (*certResponse, *refusal) {
	if ref := a.once(login, now, refuse); ref != nil {
		return nil, ref
	}
	fp := ssh.FingerprintSHA256(pub)
	creq := certs.UserCertRequest{
		Principals: login.Principals, Groups: login.Groups, TTL: ttl, KeyID: login.Identity, Now: now,
		NoPTY: a.cfg.NoPTY, NoPortForwarding: a.cfg.NoPortForwarding, AgentForwarding: a.cfg.AgentForwarding,
	}
	if a.cfg.SourceAddress {
		creq.SourceAddress = client.String()
	}
	// A request the CA refuses must not take a serial: try it first.
	if _, err := a.cfg.Authority.SignUser(pub, creq); err != nil {
		return nil, refuse(http.StatusForbidden, err.Error(), "the certificate cannot be issued for these names; ask an admin")
	}
	rec, err := a.cfg.Register.IssueCert(r.Context(), recorder.IssuedCert{
		KeyID: login.Identity, Principals: login.Principals, Groups: login.Groups, Key: fp,
		ValidAfter:  time.Unix(now.Add(-certs.Backdate).Unix(), 0).UTC(),
		ValidBefore: time.Unix(now.Add(ttl).Unix(), 0).UTC(),
		IssuedAt:    now.UTC(), IssuedBy: issuedBy + " (" + a.cfg.Issuer + ")",
		Subject: login.Subject, Client: client.String(),
	})
	if err != nil {
		a.log.Error("record issued certificate", "err", err)
		return nil, refuse(http.StatusInternalServerError, "register of issued certificates failed: "+err.Error(),
			"the bastion could not record the certificate, so it issued none; try again later, or tell an admin")
	}
	creq.Serial = rec.Serial
	cert, err := a.cfg.Authority.SignUser(pub, creq)
	if err != nil {
		a.log.Error("sign certificate", "serial", rec.Serial, "err", err)
		return nil, refuse(http.StatusInternalServerError, "signing failed after the serial was recorded: "+err.Error(),
			"the bastion could not sign the certificate; tell an admin")
	}
	a.issued(r, client, rec, cert)
	return &certResponse{
		Certificate: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert))),
		Identity:    login.Identity, Principals: login.Principals, Groups: nonNil(login.Groups), Serial: cert.Serial,
		ValidAfter: time.Unix(int64(cert.ValidAfter), 0).UTC(), ValidBefore: time.Unix(int64(cert.ValidBefore), 0).UTC(),
	}, nil
}

// fresh refuses a token that cannot give a certificate whatever the
// issuance limit says, before the limit is asked: one issued before the
// API started, since its use before the start is not remembered, and one
// used already. Told to wait instead, its holder would wait for nothing,
// and its requests would not count against the address.
func (a *API) fresh(login *certs.OIDCLogin, now time.Time, refuse func(int, string, string) *refusal) *refusal {
	switch {
	case login.IssuedAt.Before(a.started):
		return refuse(http.StatusUnauthorized, "token issued before the login API started",
			"the ID token was issued before the bastion (re)started, so the bastion cannot tell whether it was used already; log in again")
	case a.used.used(login.Token, now):
		return usedToken(refuse)
	}
	return nil
}

func usedToken(refuse func(int, string, string) *refusal) *refusal {
	return refuse(http.StatusUnauthorized, "token already used for a certificate",
		"this ID token was already used for a certificate; each sign-in gives one: log in again")
}

// once claims login's token for this request: a token yields one
// certificate (fresh has checked it, but a request racing this one may
// have claimed it since).
func (a *API) once(login *certs.OIDCLogin, now time.Time, refuse func(int, string, string) *refusal) *refusal {
	switch ok, full := a.used.claim(login.Token, login.Until, now); {
	case full:
		return refuse(http.StatusServiceUnavailable, fmt.Sprintf("%d ID tokens still valid are remembered as used: no room for another", a.cfg.UsedTokens),
			"the bastion is issuing more certificates than it can keep track of; try again in a few minutes, or tell an admin")
	case !ok:
		return usedToken(refuse)
	}
	return nil
}

// parse reads and checks the request body, the key and the TTL.
func (a *API) parse(r *http.Request, w http.ResponseWriter) (*certRequest, ssh.PublicKey, time.Duration, *refusal) {
	bad := func(reason, msg string) *refusal {
		return &refusal{status: http.StatusBadRequest, reason: reason, message: msg}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, nil, 0, &refusal{status: http.StatusRequestEntityTooLarge, reason: "request body too large",
			message: fmt.Sprintf("the request body is larger than %d bytes; send only id_token, public_key, ttl and nonce", MaxBody)}
	case err != nil:
		return nil, nil, 0, bad("request body unreadable", "the request body could not be read; send it again")
	}
	var req certRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		return nil, nil, 0, bad("request is not the expected JSON object",
			`the request body must be one JSON object with "id_token" and "public_key" (and optionally "ttl" and "nonce"), and no other fields`)
	}
	if req.IDToken == "" || req.PublicKey == "" {
		return nil, nil, 0, bad("id_token or public_key missing", `the request needs both "id_token" and "public_key"`)
	}
	pub, ref := parseKey(req.PublicKey)
	if ref != nil {
		return nil, nil, 0, ref
	}
	ttl, ref := a.ttl(req.TTL)
	if ref != nil {
		ref.key = ssh.FingerprintSHA256(pub)
		return nil, nil, 0, ref
	}
	return &req, pub, ttl, nil
}

// parseKey reads the one public key to certify, in authorized_keys form.
func parseKey(s string) (ssh.PublicKey, *refusal) {
	bad := func(reason, msg string) (ssh.PublicKey, *refusal) {
		return nil, &refusal{status: http.StatusBadRequest, reason: reason, message: msg}
	}
	pub, _, opts, rest, err := ssh.ParseAuthorizedKey([]byte(s))
	switch {
	case err != nil:
		return bad("public_key malformed", `public_key is not an OpenSSH public key: send one line as in KEY.pub, like "ssh-ed25519 AAAA... comment"`)
	case len(opts) > 0 || len(bytes.TrimSpace(rest)) > 0:
		return bad("public_key has options or more than one key", "public_key must be exactly one key, without options, as in KEY.pub")
	}
	if _, ok := pub.(*ssh.Certificate); ok {
		return bad("public_key is a certificate", "public_key is a certificate; send the plain public key (KEY.pub, not KEY-cert.pub)")
	}
	switch pub.Type() {
	case "ssh-dss": // ssh.KeyAlgoDSA, deprecated: OpenSSH no longer accepts DSA
		return bad("public_key is DSA", "DSA keys are not accepted; use an ed25519 key (ssh-keygen -t ed25519)")
	case ssh.KeyAlgoRSA:
		if k, ok := pub.(ssh.CryptoPublicKey).CryptoPublicKey().(*rsa.PublicKey); ok && k.N.BitLen() < 2048 {
			return bad("public_key is RSA shorter than 2048 bits", "RSA keys shorter than 2048 bits are not accepted; use an ed25519 key (ssh-keygen -t ed25519)")
		}
	}
	return pub, nil
}

// ttl reads the TTL asked for: the default when empty, refused above
// MaxTTL.
func (a *API) ttl(s string) (time.Duration, *refusal) {
	if s == "" {
		return a.cfg.TTL, nil
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, &refusal{status: http.StatusBadRequest, reason: "ttl malformed",
			message: `ttl is not a duration; use a number with a unit, like "1h" or "30m"`}
	case d <= 0:
		return 0, &refusal{status: http.StatusBadRequest, reason: "ttl not positive", message: "ttl must be positive, like \"1h\""}
	case d > a.cfg.MaxTTL:
		return 0, &refusal{status: http.StatusBadRequest, ttl: d.String(), reason: fmt.Sprintf("ttl %s above max_ttl %s", d, a.cfg.MaxTTL),
			message: fmt.Sprintf("ttl %s is longer than this bastion issues (at most %s); ask for less, or leave ttl out for %s", d, a.cfg.MaxTTL, a.cfg.TTL)}
	}
	return d, nil
}

// record seals a refusal in the audit chain and logs it. A refusal that
// cannot be sealed is still a refusal: the failure is logged.
func (a *API) record(r *http.Request, client netip.Addr, ref *refusal) {
	ref.reason = clip(ref.reason)
	now := a.cfg.Now()
	seal, last := false, false
	if !ref.unsealed {
		seal, last = a.seal.take(now)
	}
	if last {
		ref.reason += fmt.Sprintf(" (refusal records suspended: more than %d refusals within %s; until %s, refusals are logged, not sealed)",
			a.cfg.RecordedRefusals, a.cfg.FailureWindow, a.seal.end().UTC().Format(time.RFC3339))
	}
	attrs := []any{"client", client.String(), "status", ref.status, "reason", ref.reason}
	if ref.identity != "" {
		attrs = append(attrs, "identity", ref.identity)
	}
	if ref.subject != "" {
		attrs = append(attrs, "subject", ref.subject)
	}
	if ref.key != "" {
		attrs = append(attrs, "key", ref.key)
	}
	if ref.repeats > 0 {
		if ref.repeats&(ref.repeats-1) != 0 {
			return
		}
		attrs = append(attrs, "refusals", ref.repeats)
	}
	if !seal {
		audit.Record(a.log, audit.CertRefused, append(attrs, "sealed", false)...)
		return
	}
	rec, head, err := a.cfg.Register.RefuseCert(r.Context(), recorder.CertRefusal{
		Time: now.UTC(), Client: client.String(), Identity: ref.identity, Subject: ref.subject, Key: ref.key, TTL: ref.ttl,
		Status: ref.status, Reason: ref.reason, Via: issuedBy,
	})
	if err != nil {
		a.log.Error("refused certificate request not sealed in the audit chain", append(attrs, "err", err)...)
	} else {
		attrs = append(attrs, "refusal", rec.ID, "chain_head", head.String())
	}
	audit.Record(a.log, audit.CertRefused, attrs...)
}

// issued logs the audit record of an issue (sealed by IssueCert).
func (a *API) issued(r *http.Request, client netip.Addr, rec recorder.IssuedCert, cert *ssh.Certificate) {
	attrs := []any{"identity", rec.KeyID, "key_id", rec.KeyID, "principals", rec.Principals, "groups", rec.Groups,
		"serial", cert.Serial, "key", rec.Key, "valid_after", rec.ValidAfter, "valid_before", rec.ValidBefore,
		"issued_by", rec.IssuedBy, "subject", rec.Subject, "client", client.String()}
	if src, ok := cert.CriticalOptions["source-address"]; ok {
		attrs = append(attrs, "source_address", src)
	}
	if head, err := a.cfg.Register.Head(r.Context()); err == nil && head != nil {
		attrs = append(attrs, "chain_head", head.String())
	}
	audit.Record(a.log, audit.CertIssued, attrs...)
}

// clientAddr is the requester's address: the connection's peer. Headers
// such as X-Forwarded-For are not trusted.
func clientAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, _ := netip.ParseAddr(host)
	return addr.Unmap().WithZone("")
}

// maxReason caps a refusal's reason as recorded: a provider's error may
// quote its answer.
const maxReason = 512

// clip makes a reason fit the record: at most maxReason bytes, valid
// UTF-8, and control and format characters (a provider's answer could
// hold terminal escapes, line breaks or bidi overrides) shown as U+FFFD.
func clip(s string) string {
	if len(s) > 2*maxReason {
		s = s[:2*maxReason] // what is mapped below, at most
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return utf8.RuneError
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	if len(s) <= maxReason {
		return s
	}
	return strings.ToValidUTF8(s[:maxReason], "") + "…"
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
