package certs

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/coreos/go-oidc/v3/oidc"
)

// googleIssuer is the one provider known to put its issuer in iss without
// the scheme; go-oidc accepts that for it alone, and so does this.
const googleIssuer = "https://accounts.google.com"

// checkToken checks a token whose signature verified: issuer, audience
// and authorized party, expiry, not-before, issue time and nonce.
func (o *OIDC) checkToken(tok *oidc.IDToken, claims map[string]json.RawMessage, nonce string) *LoginError {
	if tok.Issuer != o.cfg.Issuer && !(o.cfg.Issuer == googleIssuer && tok.Issuer == "accounts.google.com") {
		return tokenRefused("token issued by another issuer",
			fmt.Sprintf("the ID token was issued by another provider than the one this bastion trusts (%s); log in with that one", o.cfg.Issuer))
	}
	if !slices.Contains(tok.Audience, o.cfg.ClientID) {
		return tokenRefused("token issued to another audience",
			fmt.Sprintf("the ID token was issued to another client, not to %q; log in with the client ID this bastion announces (GET /v1/login)", o.cfg.ClientID))
	}
	if !o.authorizedParty(tok, claims) {
		return tokenRefused("token's authorized party (azp) is another client",
			fmt.Sprintf("the ID token was issued for another client (authorized party), not for %q; log in with the client ID this bastion announces", o.cfg.ClientID))
	}
	now := o.cfg.Now()
	if tok.Expiry.IsZero() || !now.Before(tok.Expiry) {
		return tokenRefused("token expired", "the ID token has expired; log in again")
	}
	if raw, ok := claims["nbf"]; ok {
		nbf, err := numericDate(raw)
		if err != nil || nbf.After(now.Add(o.cfg.Skew)) {
			return tokenRefused("token not valid yet (nbf)", "the ID token is not valid yet (nbf); check the clocks of the provider and the bastion")
		}
	}
	switch {
	case tok.IssuedAt.IsZero():
		return tokenRefused("token has no issue time (iat)", "the ID token has no issue time (iat), which OpenID Connect requires; check the provider")
	case tok.IssuedAt.After(now.Add(o.cfg.Skew)):
		return tokenRefused("token issued in the future (iat)", "the ID token is dated in the future (iat); check the clocks of the provider and the bastion")
	case tok.IssuedAt.Before(now.Add(-o.cfg.MaxTokenAge)):
		return tokenRefused("token issued too long ago (iat)",
			fmt.Sprintf("the ID token was issued more than %s ago; log in again for a fresh one", o.cfg.MaxTokenAge))
	}
	if nonce != "" && subtle.ConstantTimeCompare([]byte(nonce), []byte(tok.Nonce)) != 1 {
		return tokenRefused("nonce does not match",
			"the ID token's nonce does not match the nonce sent with it; log in again")
	}
	return nil
}

// authorizedParty applies OpenID Connect Core 3.1.3.7: with several
// audiences, or an azp claim at all, the authorized party (azp) must be
// this client.
func (o *OIDC) authorizedParty(tok *oidc.IDToken, claims map[string]json.RawMessage) bool {
	raw, ok := claims["azp"]
	if !ok {
		return len(tok.Audience) == 1
	}
	var azp string
	return json.Unmarshal(raw, &azp) == nil && azp == o.cfg.ClientID
}

// checkClaimNames refuses claims that name one claim twice. go-oidc reads
// iss, sub, aud, exp, iat, nbf and nonce with encoding/json, which matches
// member names without regard to case (Unicode simple folding: "ſub" is
// sub) and keeps the last: {"exp": PAST, "EXP": FUTURE} would pass for
// valid, while the bastion reads other claims by their exact name. A
// provider that lets users name a claim of their own must not make one
// that overrides these; and exact duplicates have no one meaning.
func checkClaimNames(payload []byte) *LoginError {
	dec := json.NewDecoder(bytes.NewReader(payload))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return tokenRefused("claims are not a JSON object", "the ID token's claims are not a JSON object; log in again")
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		name, ok := t.(string)
		var skip json.RawMessage
		if err != nil || !ok || dec.Decode(&skip) != nil {
			return tokenRefused("claims are not a JSON object", "the ID token's claims are not a JSON object; log in again")
		}
		k := foldName(name)
		if seen[k] {
			return tokenRefused("claims name a claim twice (case folded)",
				"the ID token holds a claim twice (names that differ only in case count as the same), so it has no one meaning; the bastion refuses it: check the provider's claim mappers")
		}
		seen[k] = true
	}
	return nil
}

// foldName maps a name to one representative of its case-folding class:
// two names are equal under strings.EqualFold (what encoding/json uses to
// match member names) exactly when their foldName are.
func foldName(s string) string {
	var b strings.Builder
	for _, r := range s {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		b.WriteRune(m)
	}
	return b.String()
}

// numericDate reads a JSON NumericDate (seconds, possibly fractional).
func numericDate(raw json.RawMessage) (time.Time, error) {
	if len(raw) > 0 && raw[0] == '"' {
		// json.Number would take a quoted number; RFC 7519 section 2
		// says a number.
		return time.Time{}, errors.New("NumericDate is a string")
	}
	var f json.Number
	if err := json.Unmarshal(raw, &f); err != nil {
		return time.Time{}, err
	}
	secs, err := strconv.ParseFloat(f.String(), 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(int64(secs), 0), nil
}

// identityOf returns the identity claim's value when it is a name a
// certificate can carry, for the audit trail; "" otherwise.
func identityOf(claims map[string]json.RawMessage, claim string) string {
	var s string
	if json.Unmarshal(claims[claim], &s) != nil || len(s) > maxNameLen || checkName("principal", s) != nil {
		return ""
	}
	if claim == "email" && !emailVerified(claims["email_verified"]) {
		return "" // an address the provider does not vouch for names no one
	}
	return s
}

// mapClaims turns a checked token's claims into a login: identity (and,
// for email, email_verified), principals and groups.
func (o *OIDC) mapClaims(tok *oidc.IDToken, claims map[string]json.RawMessage) (*OIDCLogin, *LoginError) {
	claim := o.cfg.IdentityClaim
	raw, ok := claims[claim]
	var ident string
	switch {
	case !ok || string(raw) == "null":
		return nil, identityRefused(fmt.Sprintf("identity claim %q missing", claim),
			fmt.Sprintf("the ID token carries no %q claim, which names you on this bastion: ask the provider's admin to release it (scopes), or the bastion's admin to set login.identity_claim", claim))
	case json.Unmarshal(raw, &ident) != nil || ident == "":
		return nil, identityRefused(fmt.Sprintf("identity claim %q is not a non-empty string", claim),
			fmt.Sprintf("the ID token's %q claim is not a name (a non-empty string); ask the bastion's admin to set login.identity_claim to a claim that is", claim))
	}
	if err := checkClaimName(claim, "principal", ident); err != nil {
		return nil, err
	}
	if claim == "email" && !emailVerified(claims["email_verified"]) {
		return nil, identityRefused("email not verified",
			"the provider has not verified this account's email address (email_verified is not true); verify it with the provider, then log in again")
	}
	// OpenID Connect Core 2: sub is required, at most 255 ASCII
	// characters.
	if tok.Subject == "" || len(tok.Subject) > 255 || !printableASCII(tok.Subject) {
		return nil, tokenRefused("subject (sub) missing or malformed",
			"the ID token's subject (sub) is missing or not up to 255 printable ASCII characters; check the provider")
	}
	login := &OIDCLogin{Identity: ident, Subject: tok.Subject, Principals: []string{ident}}
	if c := o.cfg.PrincipalsClaim; c != "" {
		names, err := nameList(claims, c, "principal", maxPrincipals)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if !slices.Contains(login.Principals, n) {
				login.Principals = append(login.Principals, n)
			}
		}
	}
	groups, err := nameList(claims, o.cfg.GroupsClaim, "group", maxGroups)
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		if !slices.Contains(login.Groups, g) {
			login.Groups = append(login.Groups, g)
		}
	}
	return login, nil
}

func printableASCII(s string) bool {
	for i := range len(s) {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func identityRefused(reason, msg string) *LoginError {
	return &LoginError{Kind: IdentityRefused, Reason: reason, Message: msg}
}

// emailVerified accepts true, and the string "true" that some providers
// send.
func emailVerified(raw json.RawMessage) bool {
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b
	}
	var s string
	return json.Unmarshal(raw, &s) == nil && s == "true"
}

// nameList reads claim as a list of names or a single name (absent or
// null: none), each one a certificate can carry (kind: principal or
// group), at most max of them.
func nameList(claims map[string]json.RawMessage, claim, kind string, max int) ([]string, *LoginError) {
	raw, ok := claims[claim]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var list []string
	if json.Unmarshal(raw, &list) != nil {
		var one string
		if json.Unmarshal(raw, &one) != nil {
			return nil, identityRefused(fmt.Sprintf("%s claim %q is not a list of names", kind, claim),
				fmt.Sprintf("the ID token's %q claim is neither a list of names nor a name; ask the bastion's admin to check the %ss claim setting", claim, kind))
		}
		list = []string{one}
	}
	if len(list) > max {
		return nil, identityRefused(fmt.Sprintf("%s claim %q has %d names, more than %d", kind, claim, len(list), max),
			fmt.Sprintf("the ID token's %q claim has %d names; a certificate carries at most %d: ask the provider's admin to send fewer", claim, len(list), max))
	}
	for _, n := range list {
		if err := checkClaimName(claim, kind, n); err != nil {
			return nil, err
		}
	}
	return list, nil
}

// checkClaimName refuses a name a certificate cannot carry (as ca sign
// does), or one too long.
func checkClaimName(claim, kind, name string) *LoginError {
	err := checkName(kind, name)
	if err == nil && len(name) > maxNameLen {
		err = fmt.Errorf("%s name is longer than %d bytes", kind, maxNameLen)
	}
	if err == nil {
		return nil
	}
	// The name is not quoted to the requester: it may hold control
	// characters.
	return identityRefused(fmt.Sprintf("claim %q: %s name not usable in a certificate", claim, kind),
		fmt.Sprintf("a name in the ID token's %q claim cannot go in a certificate (empty, too long, or with a comma, white space or control characters); ask the provider's admin to change it", claim))
}
