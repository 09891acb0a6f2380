// Command kube-apiserver-testenv runs a real Kubernetes API server for tests: an embedded
// etcd (go.etcd.io/etcd/server/v3/embed) and the kube-apiserver command of
// k8s.io/kubernetes in one process. It exists because neither etcd nor kube-apiserver
// binaries can be fetched here, while both build from the Go module proxy, and a single
// process is one PID to start, watch and stop.
//
// Usage: kube-apiserver-testenv -etcd-dir DIR [-etcd-log-level warn] -- [kube-apiserver flags]
//
// etcd listens on the unix socket DIR/etcd.sock (no TCP port to collide with) and its peer
// listener on a kernel-chosen loopback port, exactly as the integration tests of
// k8s.io/kubernetes run it. --etcd-servers is added to the kube-apiserver flags unless
// given. SIGTERM or SIGINT shuts the API server down gracefully, then etcd.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // CronJob time zones, as in the kube-apiserver main package

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // --logging-format=json
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as upstream
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric, as upstream
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

// maxSocketPath is the longest unix socket path Linux accepts (sun_path minus the NUL).
const maxSocketPath = 107

// etcdStartTimeout bounds the wait for a single-member etcd to elect itself leader.
const etcdStartTimeout = 60 * time.Second

// startEtcd starts a single-member etcd that stores its data in dir and serves clients on
// a unix socket in dir. It returns the server and the URL kube-apiserver should use.
func startEtcd(dir, logLevel string) (*embed.Etcd, string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, "", err
	}
	socket := filepath.Join(dir, "etcd.sock")
	if len(socket) > maxSocketPath {
		return nil, "", fmt.Errorf("etcd socket path %q is longer than %d bytes", socket, maxSocketPath)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	cfg := embed.NewConfig()
	cfg.Dir = filepath.Join(dir, "data")
	cfg.LogLevel = logLevel
	cfg.LogOutputs = []string{"stderr"}
	// Test data is thrown away with the process; fsync only slows every write down.
	cfg.UnsafeNoFsync = true
	client := url.URL{Scheme: "unix", Path: socket}
	cfg.ListenClientUrls = []url.URL{client}
	// etcd refuses a unix URL here; nothing connects to the advertised address.
	cfg.AdvertiseClientUrls = []url.URL{{Scheme: "http", Host: "127.0.0.111:0"}}
	peer := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)

	server, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("start etcd: %w", err)
	}
	select {
	case <-server.Server.ReadyNotify():
		return server, client.String(), nil
	case err := <-server.Err():
		server.Close()
		return nil, "", fmt.Errorf("etcd failed while starting: %w", err)
	case <-time.After(etcdStartTimeout):
		server.Close()
		return nil, "", errors.New("etcd did not become ready in time")
	}
}

// hasFlag reports whether the kube-apiserver arguments already set the named flag.
func hasFlag(args []string, name string) bool {
	return slices.ContainsFunc(args, func(arg string) bool {
		return arg == "--"+name || strings.HasPrefix(arg, "--"+name+"=")
	})
}

func main() {
	flags := flag.NewFlagSet("kube-apiserver-testenv", flag.ExitOnError)
	etcdDir := flags.String("etcd-dir", "", "directory for etcd's data and client socket (required)")
	etcdLogLevel := flags.String("etcd-log-level", "warn", "etcd log level: debug, info, warn, error")
	flags.Usage = func() {
		fmt.Fprintln(flags.Output(), "Usage: kube-apiserver-testenv -etcd-dir DIR -- [kube-apiserver flags]")
		flags.PrintDefaults()
	}
	_ = flags.Parse(os.Args[1:])
	if *etcdDir == "" {
		flags.Usage()
		os.Exit(2)
	}

	etcd, etcdURL, err := startEtcd(*etcdDir, *etcdLogLevel)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
	go func() {
		if err, ok := <-etcd.Err(); ok && err != nil {
			fmt.Fprintf(os.Stderr, "Error: etcd stopped: %v\n", err)
			os.Exit(1)
		}
	}()

	args := flags.Args()
	if !hasFlag(args, "etcd-servers") {
		args = append(args, "--etcd-servers="+etcdURL)
	}
	command := app.NewAPIServerCommand()
	command.SetArgs(args)
	code := cli.Run(command)
	etcd.Close()
	os.Exit(code)
}
