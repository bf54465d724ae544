package bastion

import (
	"context"
	"net"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/postern/postern/internal/testenv"
)

// BenchmarkForward100kRows fetches a 100 000-row result (about 6.5 MB on
// the wire) with pgx: directly from PostgreSQL, through a plain tcp
// forward, and through a postgres forward (parsed, masked, recorded), both
// forwards by OpenSSH's ssh -N -L through the bastion. The paths take turns
// in each iteration, so that a busy machine slows them alike; it reports
// each path's median MB/s (bytes the client read) and the median of the
// turns' ratios of the postgres forward to the tcp one (the goal is at
// least 0.7).
//
//	go test -run '^$' -bench Forward100kRows -benchtime 15x ./bastion/
func BenchmarkForward100kRows(b *testing.B) {
	testenv.Require(b, "psql")
	pg := testenv.Postgres(b)
	pg.SQL(b, "CREATE TABLE big AS SELECT i, md5(i::text) AS h, 'row ' || i AS note FROM generate_series(1, 100000) i")
	plain := newForwardRig(b, []Forward{{Port: pg.Port, Protocol: ForwardTCP}}, []int{pg.Port})
	parsed := newForwardRig(b, []Forward{{Port: pg.Port, Protocol: ForwardPostgres}}, []int{pg.Port})
	port := strconv.Itoa(pg.Port)
	tcpAddr, _ := plain.localForward(b, plain.key(b, "fwd"), "root@db", "localhost:"+port)
	pgAddr, _ := parsed.localForward(b, parsed.key(b, "fwd"), "root@db", "localhost:"+port)
	paths := []*benchPath{{name: "direct", addr: pg.Addr()}, {name: "tcp", addr: tcpAddr}, {name: "postgres", addr: pgAddr}}
	for _, p := range paths {
		p.connect(b)
	}
	b.ResetTimer()
	for range b.N {
		for _, p := range paths {
			p.query(b)
		}
	}
	b.StopTimer()
	for _, p := range paths {
		b.ReportMetric(median(p.rates), p.name+"-MB/s")
	}
	// The ratio of each turn's two forwards, then the median: a load that
	// comes and goes slows both of a turn alike.
	ratios := make([]float64, b.N)
	for i := range ratios {
		ratios[i] = paths[2].rates[i] / paths[1].rates[i]
	}
	b.ReportMetric(median(ratios), "postgres/tcp")
}

// benchPath is one way to the database and its measurements.
type benchPath struct {
	name, addr string
	conn       *pgx.Conn
	read       atomic.Int64 // bytes read from the connection
	rates      []float64    // MB/s of each query
}

func (p *benchPath) connect(b *testing.B) {
	host, port, _ := net.SplitHostPort(p.addr)
	cfg, err := pgx.ParseConfig("host=" + host + " port=" + port + " user=postgres dbname=postgres sslmode=disable")
	if err != nil {
		b.Fatal(err)
	}
	dial := cfg.DialFunc
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		return countingConn{c, &p.read}, err
	}
	if p.conn, err = pgx.ConnectConfig(context.Background(), cfg); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.conn.Close(context.Background()) })
}

// query fetches the 100 000 rows once and records the rate.
func (p *benchPath) query(b *testing.B) {
	ctx := context.Background()
	before, start := p.read.Load(), time.Now()
	rows, err := p.conn.Query(ctx, "SELECT i, h, note FROM big")
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for rows.Next() {
		rows.RawValues()
		n++
	}
	if rows.Err() != nil || n != 100000 {
		b.Fatalf("%s: %d rows: %v", p.name, n, rows.Err())
	}
	p.rates = append(p.rates, float64(p.read.Load()-before)/1e6/time.Since(start).Seconds())
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	return s[len(s)/2]
}

// countingConn counts what is read from it.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}
