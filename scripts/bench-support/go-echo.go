// go-echo: the benchmark's echo contract on Go's net/http/fcgi, the responder a
// Go developer would write: the body back as application/octet-stream, or, with
// ECHO_DISCARD=1, the body read and thrown away and "ok" answered. A measuring
// peer for scripts/bench, not part of swift-fcgi.
//
//	go-echo ADDRESS   (host:port)
package main

import (
	"io"
	"net"
	"net/http"
	"net/http/fcgi"
	"os"
)

func main() {
	listener, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		os.Stderr.WriteString("go-echo: " + err.Error() + "\n")
		os.Exit(1)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fcgi.ProcessEnv(r)["ECHO_DISCARD"] == "1" {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "ok\n")
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		io.Copy(w, r.Body)
	})
	if err := fcgi.Serve(listener, handler); err != nil {
		os.Stderr.WriteString("go-echo: " + err.Error() + "\n")
		os.Exit(1)
	}
}
