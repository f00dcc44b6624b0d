// Command pause is the pod sandbox process of the test node (containerd's sandbox_image):
// it holds the pod's namespaces open and exits on SIGINT or SIGTERM. Built by
// scripts/build-tools.sh; tests/support/node.py wraps it in an image without a registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	// As PID 1 of the pod, reap the orphans that end up here.
	signal.Notify(signals, syscall.SIGCHLD)
	for sig := range signals {
		if sig == syscall.SIGCHLD {
			for {
				pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
