package bench

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/gorilla/websocket"
	"github.com/lxzan/gws"

	"github.com/tetherws/tether"
	"github.com/tetherws/tether/core"
	"github.com/tetherws/tether/heartbeat"
	"github.com/tetherws/tether/middleware"
)

// Every server peer echoes each data message back with the same opcode,
// configured as its own documentation shows: no compression anywhere
// (gorilla, coder and gws default to none), default buffer sizes, gws with
// its defaults (ParallelEnabled off, 4 KiB read buffer).
//
// With hb, each peer also runs the liveness check its documentation
// recommends, pinging every pingEvery (30 s) with a 40 s read deadline:
//   - raw gobwas/ws: a read deadline and a time.AfterFunc ping timer per
//     connection, writes under a mutex;
//   - gorilla: the chat example's pattern: read deadline, pong handler, a
//     second goroutine with a ticker sending pings (WriteControl);
//   - coder: a second goroutine with a ticker calling Conn.Ping;
//   - gws: the README's keep-alive: SetDeadline on open and on every ping
//     (the client pings; the server answers and extends the deadline);
//   - tether: the heartbeat plugin (tether.WithHeartbeat; without hb,
//     tether.WithoutHeartbeat, since tether's is on by default).
type peer struct {
	name    string
	handler http.Handler      // served by net/http over TCP
	conn    func(nc net.Conn) // or served from a raw accepted conn
}

// serveConn serves one connection, in memory or accepted from a listener,
// and returns when it ends.
func (p peer) serveConn(nc net.Conn) {
	if p.conn != nil {
		p.conn(nc)
		return
	}
	serveHTTPConn(nc, p.handler)
}

// pingEvery is the peers' heartbeat interval; the idle benchmark's server
// process shortens it so that a heartbeat round passes before it measures.
var pingEvery = 30 * time.Second

const pongWait = 40 * time.Second

// Peer names, as they appear in benchmark names and the ratio table.
const (
	nRaw      = "raw-gobwas"
	nWsutil   = "gobwas-wsutil"
	nGorilla  = "gorilla"
	nCoder    = "coder"
	nGws      = "gws"
	nTether   = "tether"
	nTetherMW = "tether-hb-3mw"
	nTCP      = "raw-tcp"
)

// serverPeers returns the echo servers, in table order.
func serverPeers(hb bool) []peer {
	return []peer{rawGobwasPeer(hb), wsutilPeer(), gorillaPeer(hb), coderPeer(hb), gwsPeer(hb), tetherPeer(hb, false), tetherPeer(true, true)}
}

func peerNamed(name string, hb bool) (peer, bool) {
	for _, p := range serverPeers(hb) {
		if p.name == name {
			return p, true
		}
	}
	return peer{}, false
}

// rawGobwasPeer is the floor of our stack: gobwas/ws's low-level API
// (ws.Upgrade on the raw conn, ReadHeaderBuffer, WriteHeaderBuffer) with
// bufio and every buffer reused; one flush when the read buffer is
// drained, so that it coalesces pipelined replies like tether does.
func rawGobwasPeer(hb bool) peer {
	return peer{name: nRaw, conn: func(nc net.Conn) {
		defer nc.Close()
		if _, err := ws.Upgrade(nc); err != nil {
			return
		}
		br := bufio.NewReaderSize(nc, 4096)
		bw := bufio.NewWriterSize(nc, 4096)
		var wmu sync.Mutex
		if hb {
			_ = nc.SetReadDeadline(time.Now().Add(pongWait)) // wall time: a socket deadline
			var t *time.Timer
			t = time.AfterFunc(pingEvery, func() {
				wmu.Lock()
				_ = ws.WriteHeader(bw, ws.Header{Fin: true, OpCode: ws.OpPing})
				_ = bw.Flush()
				wmu.Unlock()
				t.Reset(pingEvery)
			})
			defer t.Stop()
		}
		hbuf := make([]byte, ws.MaxHeaderSize)
		payload := make([]byte, 4096)
		for {
			h, err := ws.ReadHeaderBuffer(br, hbuf)
			if err != nil {
				return
			}
			if int64(cap(payload)) < h.Length {
				payload = make([]byte, h.Length)
			}
			p := payload[:h.Length]
			if _, err := io.ReadFull(br, p); err != nil {
				return
			}
			if h.Masked {
				ws.Cipher(p, h.Mask, 0)
			}
			switch h.OpCode {
			case ws.OpClose:
				return
			case ws.OpPong:
				if hb {
					_ = nc.SetReadDeadline(time.Now().Add(pongWait)) // wall time: a socket deadline
				}
				continue
			case ws.OpPing:
				h.OpCode = ws.OpPong
			}
			h.Masked = false
			if hb {
				wmu.Lock()
			}
			err = ws.WriteHeaderBuffer(bw, h, hbuf)
			if err == nil {
				_, err = bw.Write(p)
			}
			if err == nil && br.Buffered() == 0 {
				err = bw.Flush()
			}
			if hb {
				wmu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}}
}

// wsutilPeer: gobwas's wsutil helpers, as its README's echo example.
func wsutilPeer() peer {
	return peer{name: nWsutil, conn: func(nc net.Conn) {
		defer nc.Close()
		if _, err := ws.Upgrade(nc); err != nil {
			return
		}
		for {
			msg, op, err := wsutil.ReadClientData(nc)
			if err != nil {
				return
			}
			if err := wsutil.WriteServerMessage(nc, op, msg); err != nil {
				return
			}
		}
	}}
}

// gorillaPeer: Upgrader with its defaults (buffers reused from net/http),
// ReadMessage/WriteMessage as its echo example.
func gorillaPeer(hb bool) peer {
	up := &websocket.Upgrader{}
	return peer{name: nGorilla, handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		if hb {
			_ = c.SetReadDeadline(time.Now().Add(pongWait)) // wall time: a socket deadline
			c.SetPongHandler(func(string) error {
				return c.SetReadDeadline(time.Now().Add(pongWait)) // wall time: a socket deadline
			})
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				t := time.NewTicker(pingEvery)
				defer t.Stop()
				for {
					select {
					case <-t.C:
						if c.WriteControl(websocket.PingMessage, nil, time.Now().Add(10*time.Second)) != nil {
							return
						}
					case <-stop:
						return
					}
				}
			}()
		}
		for {
			mt, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, p); err != nil {
				return
			}
		}
	})}
}

// coderPeer: websocket.Accept with default options (compression
// disabled), Read/Write.
func coderPeer(hb bool) peer {
	return peer{name: nCoder, handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := coder.Accept(w, r, &coder.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		if hb {
			go func() {
				t := time.NewTicker(pingEvery)
				defer t.Stop()
				for {
					select {
					case <-t.C:
						pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
						err := c.Ping(pctx)
						pcancel()
						if err != nil {
							c.CloseNow()
							return
						}
					case <-ctx.Done():
						return
					}
				}
			}()
		}
		for {
			typ, p, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, p); err != nil {
				return
			}
		}
	})}
}

type gwsEcho struct {
	gws.BuiltinEventHandler
	hb bool
}

func (g *gwsEcho) OnOpen(c *gws.Conn) {
	if g.hb {
		_ = c.SetDeadline(time.Now().Add(pongWait)) // wall time: a socket deadline
	}
}

func (g *gwsEcho) OnPing(c *gws.Conn, payload []byte) {
	if g.hb {
		_ = c.SetDeadline(time.Now().Add(pongWait)) // wall time: a socket deadline
	}
	_ = c.WritePong(payload)
}

func (g *gwsEcho) OnMessage(c *gws.Conn, m *gws.Message) {
	_ = c.WriteMessage(m.Opcode, m.Bytes())
	_ = m.Close()
}

// gwsPeer: gws.NewUpgrader with default options, ReadLoop on the
// handler's goroutine.
func gwsPeer(hb bool) peer {
	up := gws.NewUpgrader(&gwsEcho{hb: hb}, &gws.ServerOption{})
	return peer{name: nGws, handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		c.ReadLoop()
	})}
}

func echoHandler(ctx context.Context, f core.Frame) error {
	return core.FromContext(ctx).Write(ctx, f.Op, f.Payload)
}

// tetherPeer: tether.NewServer, the README's server. Without hb, the
// heartbeat (on by default in tether) is turned off, as the other peers
// run none either. full adds the heartbeat and three middlewares (Recover,
// MaxSize, Logging at Info level, so a frame costs Logging one Enabled
// call).
func tetherPeer(hb, full bool) peer {
	opts := []tether.ServerOption{tether.WithHandler(echoHandler)}
	name := nTether
	if hb {
		opts = append(opts, tether.WithHeartbeat(heartbeat.Config{Interval: pingEvery}))
	} else {
		opts = append(opts, tether.WithoutHeartbeat())
	}
	if full {
		name = nTetherMW
		maxSize, err := middleware.MaxSize(1 << 20)
		if err != nil {
			panic(err)
		}
		logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
		opts = append(opts, tether.WithMiddleware(middleware.Recover(), maxSize, middleware.Logging(logger, middleware.Inbound)))
	}
	s, err := tether.NewServer(opts...)
	if err != nil {
		panic(err)
	}
	return peer{name: name, handler: s}
}
