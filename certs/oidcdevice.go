package certs

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode"

	"golang.org/x/oauth2"
)

// Device runs the device authorization grant: it prints the verification
// URL and the user code, then polls the token endpoint until the user has
// approved (or denied) the request, it expires, or the flow times out.
func (f *OIDCFlow) Device(ctx context.Context) (*IDToken, error) {
	ctx, cancel, explain := f.bound(ctx)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, f.client())
	meta, err := f.discover(ctx)
	if err != nil {
		return nil, explain(err)
	}
	if meta.DeviceAuthURL == "" {
		return nil, fmt.Errorf("the OpenID provider %s offers no device authorization endpoint: log in without --device", f.Issuer)
	}
	conf := f.config(meta, "")
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		return nil, explain(fmt.Errorf("start the device login: %w", err))
	}
	if err := checkDeviceAuth(da); err != nil {
		return nil, err
	}
	f.prompt("To log in, open\n\n  %s\n\nand enter the code %s\n", da.VerificationURI, da.UserCode)
	if da.VerificationURIComplete != "" {
		f.prompt("(or open %s)\n", da.VerificationURIComplete)
	}
	f.prompt("Waiting for the sign-in to finish…\n")
	tok, err := conf.DeviceAccessToken(ctx, da)
	if err != nil {
		var re *oauth2.RetrieveError
		isCode := func(code string) bool { return errors.As(err, &re) && re.ErrorCode == code }
		switch {
		case isCode("access_denied"):
			return nil, errors.New("the login was denied at the OpenID provider")
		case isCode("expired_token"), expired(da) && !errors.Is(context.Cause(ctx), errLoginTimeout):
			return nil, errors.New("the user code expired before the sign-in finished: run the command again")
		}
		return nil, explain(fmt.Errorf("device login: %w", err))
	}
	raw, err := idTokenOf(tok)
	if err != nil {
		return nil, err
	}
	return &IDToken{Raw: raw}, nil
}

// checkDeviceAuth checks what the device grant prints on the user's
// terminal: URLs to open (https, no control characters) and a user code
// of printable characters.
func checkDeviceAuth(da *oauth2.DeviceAuthResponse) error {
	for _, u := range [][2]string{{"verification_uri", da.VerificationURI}, {"verification_uri_complete", da.VerificationURIComplete}} {
		if u[1] == "" && u[0] == "verification_uri_complete" {
			continue
		}
		if err := secureURL(u[1]); err != nil {
			return fmt.Errorf("the OpenID provider's device login names %s %q: %v", u[0], u[1], err)
		}
	}
	if da.UserCode == "" || len(da.UserCode) > 64 {
		return fmt.Errorf("the OpenID provider's device login gave a user code of %d bytes", len(da.UserCode))
	}
	for _, r := range da.UserCode {
		if !unicode.IsGraphic(r) {
			return fmt.Errorf("the OpenID provider's device login gave a user code %q that is not printable text", da.UserCode)
		}
	}
	return nil
}

// expired reports whether the device code's own expiry has passed: oauth2
// stops polling then with a bare context error.
func expired(da *oauth2.DeviceAuthResponse) bool {
	return !da.Expiry.IsZero() && !time.Now().Before(da.Expiry)
}
