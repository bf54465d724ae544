package bastion

import "github.com/postern/postern/mask"

// maskMode is the masking of the connection's target; ok is false for
// masking: off.
func (c *conn) maskMode() (mask.Mode, bool) {
	if c.grant.Target.Masking == "off" {
		return 0, false
	}
	m, err := mask.ParseMode(c.grant.Target.Masking)
	if err != nil {
		m = mask.ModeFull // unknown: fail closed
	}
	return m, true
}

// maskDetect is how the bastion detects card numbers outside log lines.
func (c *conn) maskDetect() mask.Detect { return c.s.current().Detect }

// maskText masks PANs, as d detects them, in a string that goes into the
// index, a recording or a log (an exec command line, for instance).
func maskText(s string, mode mask.Mode, d mask.Detect) string {
	out, n := d.MaskText(nil, []byte(s), mode)
	if n == 0 {
		return s
	}
	return string(out)
}

// logSafe masks every digit of any PAN in s: log lines never hold one,
// whatever the target's masking mode.
func logSafe(s string) string { return maskText(s, mask.ModeFull, mask.DetectBrands) }

// logSafeAll is logSafe for each element; it copies only if it changes one.
func logSafeAll(list []string) []string {
	var out []string
	for i, s := range list {
		if m := logSafe(s); m != s {
			if out == nil {
				out = append([]string(nil), list...)
			}
			out[i] = m
		}
	}
	if out == nil {
		return list
	}
	return out
}
