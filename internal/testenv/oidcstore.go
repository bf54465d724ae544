package testenv

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// oidcStore is the provider's in-memory storage: users, clients, pending
// authorization and device requests, access tokens and signing keys. It
// implements op.Storage, op.CanSetUserinfoFromRequest and
// op.DeviceAuthorizationStorage; refresh tokens, token exchange and the
// JWT profile grant are not offered.
type oidcStore struct {
	mu        sync.Mutex // guards every field below
	users     map[string]*OIDCUser
	clients   map[string]*oidcClient
	clientIDs []string                // in the order of OIDCOptions.ClientIDs
	authReqs  map[string]*authRequest // by ID
	codes     map[string]string       // authorization code → request ID
	tokens    map[string]*accessToken // by ID
	devices   map[string]*op.DeviceAuthorizationState
	userCodes map[string]string // user code → device code
	keys      []*oidcKey        // the last one signs; all are published
	lifetime  time.Duration     // ID token lifetime
}

var (
	_ op.Storage                    = (*oidcStore)(nil)
	_ op.CanSetUserinfoFromRequest  = (*oidcStore)(nil)
	_ op.DeviceAuthorizationStorage = (*oidcStore)(nil)
)

// oidcKey is an RSA signing key; it is both op.SigningKey and op.Key.
type oidcKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *oidcKey) ID() string                                  { return k.id }
func (k *oidcKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *oidcKey) Algorithm() jose.SignatureAlgorithm          { return jose.RS256 }
func (k *oidcKey) Use() string                                 { return "sig" }

// Key is the private key for signing; publicKey wraps k for the key set.
func (k *oidcKey) Key() any { return k.key }

type publicKey struct{ *oidcKey }

func (k publicKey) Key() any { return &k.key.PublicKey }

func newOIDCKey() (*oidcKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	return &oidcKey{id: randomID(), key: key}, nil
}

func randomID() string { return rand.Text() }

// authRequest is one authorization request, from the authorize endpoint
// until its code is exchanged.
type authRequest struct {
	id, clientID, redirectURI, state, nonce string
	scopes                                  []string
	responseType                            oidc.ResponseType
	responseMode                            oidc.ResponseMode
	challenge                               *oidc.CodeChallenge
	subject                                 string // set by the login form
	authTime                                time.Time
}

func (a *authRequest) GetID() string                         { return a.id }
func (a *authRequest) GetACR() string                        { return "" }
func (a *authRequest) GetAMR() []string                      { return []string{"pwd"} }
func (a *authRequest) GetAudience() []string                 { return []string{a.clientID} }
func (a *authRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *authRequest) GetClientID() string                   { return a.clientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.challenge }
func (a *authRequest) GetNonce() string                      { return a.nonce }
func (a *authRequest) GetRedirectURI() string                { return a.redirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return a.responseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return a.responseMode }
func (a *authRequest) GetScopes() []string                   { return a.scopes }
func (a *authRequest) GetState() string                      { return a.state }
func (a *authRequest) GetSubject() string                    { return a.subject }
func (a *authRequest) Done() bool                            { return a.subject != "" }

type accessToken struct {
	id, clientID, subject string
	scopes                []string
	expires               time.Time
}

func (s *oidcStore) CreateAuthRequest(_ context.Context, r *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	var challenge *oidc.CodeChallenge
	if r.CodeChallenge != "" {
		challenge = &oidc.CodeChallenge{Challenge: r.CodeChallenge, Method: r.CodeChallengeMethod}
	}
	req := &authRequest{
		id: randomID(), clientID: r.ClientID, redirectURI: r.RedirectURI,
		state: r.State, nonce: r.Nonce, scopes: r.Scopes,
		responseType: r.ResponseType, responseMode: r.ResponseMode,
		challenge: challenge,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authReqs[req.id] = req
	return req, nil
}

func (s *oidcStore) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.authReqs[id]; ok {
		return r, nil
	}
	return nil, errors.New("authorization request not found")
}

func (s *oidcStore) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	id, ok := s.codes[code]
	s.mu.Unlock()
	if !ok {
		return nil, errors.New("code invalid or already used")
	}
	return s.AuthRequestByID(ctx, id)
}

func (s *oidcStore) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = id
	return nil
}

// DeleteAuthRequest runs once the code is exchanged: the code cannot be
// used again.
func (s *oidcStore) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.authReqs, id)
	for code, rid := range s.codes {
		if rid == id {
			delete(s.codes, code)
		}
	}
	return nil
}

// completeLogin marks the request id as authenticated by the user with
// username and password.
func (s *oidcStore) completeLogin(id, username, password string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.authReqs[id]
	if !ok {
		return errors.New("authorization request not found (expired or already used)")
	}
	u, err := s.checkPassword(username, password)
	if err != nil {
		return err
	}
	r.subject, r.authTime = u.ID, time.Now()
	return nil
}

// checkPassword needs s.mu held.
func (s *oidcStore) checkPassword(username, password string) (*OIDCUser, error) {
	u, ok := s.users[username]
	if !ok || u.Password != password {
		return nil, errors.New("wrong user name or password")
	}
	return u, nil
}

func (s *oidcStore) CreateAccessToken(_ context.Context, r op.TokenRequest) (string, time.Time, error) {
	var clientID string
	if c, ok := r.(interface{ GetClientID() string }); ok {
		clientID = c.GetClientID()
	}
	t := &accessToken{id: randomID(), clientID: clientID, subject: r.GetSubject(),
		scopes: r.GetScopes(), expires: time.Now().Add(5 * time.Minute)}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[t.id] = t
	return t.id, t.expires, nil
}

var errNoRefresh = errors.New("refresh tokens are not offered")

func (s *oidcStore) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, errNoRefresh
}

func (s *oidcStore) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, errNoRefresh
}

func (s *oidcStore) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

func (s *oidcStore) TerminateSession(_ context.Context, userID, clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, t := range s.tokens {
		if t.subject == userID && t.clientID == clientID {
			delete(s.tokens, id)
		}
	}
	return nil
}

func (s *oidcStore) RevokeToken(_ context.Context, token, _, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tokens[token]; ok && t.clientID == clientID {
		delete(s.tokens, token)
	}
	return nil
}

func (s *oidcStore) SigningKey(context.Context) (op.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[len(s.keys)-1], nil
}

func (s *oidcStore) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *oidcStore) KeySet(context.Context) ([]op.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]op.Key, len(s.keys))
	for i, k := range s.keys {
		keys[i] = publicKey{k}
	}
	return keys, nil
}

func (s *oidcStore) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	if !ok {
		return nil, fmt.Errorf("client %q not found", id)
	}
	cc := *c
	cc.lifetime = s.lifetime
	return &cc, nil
}

// AuthorizeClientIDSecret checks the secret of a client that has one.
func (s *oidcStore) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	s.mu.Lock()
	c := s.clients[id]
	s.mu.Unlock()
	if c == nil || c.secret == "" || subtle.ConstantTimeCompare([]byte(c.secret), []byte(secret)) != 1 {
		return errors.New("wrong client secret")
	}
	return nil
}

// SetUserinfoFromScopes is deprecated in op; SetUserinfoFromRequest does it.
func (s *oidcStore) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

func (s *oidcStore) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, r op.IDTokenRequest, scopes []string) error {
	return s.userinfo(info, r.GetSubject(), scopes)
}

func (s *oidcStore) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, tokenID, _, _ string) error {
	s.mu.Lock()
	t, ok := s.tokens[tokenID]
	s.mu.Unlock()
	if !ok || time.Now().After(t.expires) {
		return errors.New("token invalid or expired")
	}
	return s.userinfo(info, t.subject, t.scopes)
}

// userinfo sets the claims scopes ask for: email and email_verified
// (email), preferred_username and name (profile), groups (groups).
func (s *oidcStore) userinfo(info *oidc.UserInfo, subject string, scopes []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var u *OIDCUser
	for _, c := range s.users {
		if c.ID == subject {
			u = c
		}
	}
	if u == nil {
		return fmt.Errorf("user %q not found", subject)
	}
	info.Subject = u.ID
	for _, scope := range scopes {
		switch scope {
		case oidc.ScopeEmail:
			if u.Email != "" {
				info.Email, info.EmailVerified = u.Email, oidc.Bool(u.EmailVerified)
				if !u.EmailVerified {
					// op leaves a false email_verified out; IdPs send it.
					info.AppendClaims("email_verified", false)
				}
			}
		case oidc.ScopeProfile:
			info.PreferredUsername, info.Name = u.Username, u.Username
		case ScopeGroups:
			if u.Groups != nil {
				info.AppendClaims("groups", slices.Clone(u.Groups))
			}
		}
	}
	return nil
}

func (s *oidcStore) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return errors.New("introspection is not offered")
}

func (s *oidcStore) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s *oidcStore) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("the JWT profile grant is not offered")
}

func (s *oidcStore) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("the JWT profile grant is not offered")
}

func (s *oidcStore) Health(context.Context) error { return nil }

func (s *oidcStore) StoreDeviceAuthorization(_ context.Context, clientID, deviceCode, userCode string, expires time.Time, scopes []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[clientID]; !ok {
		return fmt.Errorf("client %q not found", clientID)
	}
	if _, ok := s.userCodes[userCode]; ok {
		return op.ErrDuplicateUserCode
	}
	s.devices[deviceCode] = &op.DeviceAuthorizationState{ClientID: clientID, Scopes: scopes, Expires: expires}
	s.userCodes[userCode] = deviceCode
	return nil
}

// GetDeviceAuthorizatonState returns a copy: op reads it after the lock is
// released while the user form may complete it.
func (s *oidcStore) GetDeviceAuthorizatonState(_ context.Context, clientID, deviceCode string) (*op.DeviceAuthorizationState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.devices[deviceCode]
	if !ok || st.ClientID != clientID {
		return nil, errors.New("device code not found for this client")
	}
	c := *st
	if c.Done {
		// A device code yields one token (RFC 8628, section 3.5).
		delete(s.devices, deviceCode)
	}
	return &c, nil
}

// completeDevice marks the device request of userCode as approved (or
// denied) by the user with username and password.
func (s *oidcStore) completeDevice(userCode, username, password string, deny bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.devices[s.userCodes[userCode]]
	if !ok {
		return errors.New("unknown user code")
	}
	if time.Now().After(st.Expires) {
		return errors.New("the user code has expired")
	}
	u, err := s.checkPassword(username, password)
	if err != nil {
		return err
	}
	if deny {
		st.Denied = true
		return nil
	}
	st.Subject, st.AMR, st.AuthTime, st.Done = u.ID, []string{"pwd"}, time.Now(), true
	return nil
}
