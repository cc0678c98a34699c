// Package bench holds tether's side-by-side benchmarks against raw
// gobwas/ws, gobwas wsutil, gorilla/websocket, coder/websocket and
// lxzan/gws. It is its own module so that the peers never enter the
// library's go.mod. Run bench/run for the table of ratios.
package bench
