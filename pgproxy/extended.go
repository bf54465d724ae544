package pgproxy

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// extended records and judges an extended-protocol Parse, Bind, Execute or
// Close: it returns the op to queue and the message to send (a stand-in
// for a refused Execute).
func (c *clientSide) extended(ctx context.Context, msg pgproto3.FrontendMessage, now time.Time) (*op, pgproto3.FrontendMessage, error) {
	s := c.s
	switch m := msg.(type) {
	case *pgproto3.Parse:
		if len(m.Query) > MaxText {
			return nil, nil, c.tooLong()
		}
		text, _ := recordText(m.Query, s.cfg.Detect, s.cfg.Mode, MaxText)
		o := &op{kind: 'P', start: now, stmt: &Statement{Protocol: "parse", Name: m.Name, Text: text, At: now}}
		if err := c.change(o, effect{name: m.Name, stmt: stmtText{text: text, sql: m.Query}}); err != nil {
			return nil, nil, c.tooMany()
		}
		return o, msg, nil
	case *pgproto3.Bind:
		st, _, err := c.lookupStmt(ctx, m.PreparedStatement, false)
		if err != nil {
			return nil, nil, err
		}
		p := portal{stmt: m.PreparedStatement, text: st.text, sql: st.sql, params: c.params(m.Parameters, m.ParameterFormatCodes)}
		o := &op{kind: 'B', start: now, stmt: &Statement{Protocol: "bind", Name: m.PreparedStatement, Text: st.text, Params: p.params, At: now}}
		if err := c.change(o, effect{portal: true, name: m.DestinationPortal, port: p}); err != nil {
			return nil, nil, c.tooMany()
		}
		return o, msg, nil
	case *pgproto3.Execute:
		p, _, err := c.lookupPortal(ctx, m.Portal)
		if err != nil {
			return nil, nil, err
		}
		st := c.statement("extended", p.stmt, p.text, p.params, now)
		st.SQL = p.sql
		refused, err := c.judge(ctx, st)
		if err != nil {
			return nil, nil, err
		}
		if refused != "" {
			msg = &pgproto3.Execute{Portal: refusedPortal()}
		}
		return &op{kind: 'E', seq: st.Seq, start: now, refused: refused}, msg, nil
	case *pgproto3.Close:
		o := &op{kind: 'C', start: now}
		if err := c.change(o, effect{portal: m.ObjectType != 'S', close: true, name: m.Name}); err != nil {
			return nil, nil, c.tooMany()
		}
		return o, msg, nil
	}
	return nil, msg, nil
}
