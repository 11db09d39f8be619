// Command pause is driftloop's own pod sandbox ("infra") process for the
// embedded cluster: it holds the pod's namespaces open, reaps zombies (it is
// PID 1 of the pod when the PID namespace is shared) and exits on SIGTERM/SIGINT.
// Built statically by hack/cluster.sh and imported into containerd as
// driftloop/pause, because no image registry is reachable from this machine.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		// Reap every exited child; WNOHANG so we never block here.
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
