// Command coredns is CoreDNS with only the plugins a single-node test
// cluster needs: it answers cluster.local (Services, headless Services and
// the pods behind them) from the Kubernetes API, and nothing else (no
// forward plugin: a pod cannot resolve a name outside the cluster).
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
)

func main() {
	// The order in which the plugins handle a query (a subset of
	// CoreDNS's plugin.cfg, in its order).
	dnsserver.Directives = []string{"bind", "errors", "log", "cache", "kubernetes"}
	coremain.Run()
}
