// Command kube-network-policies is the pod tests' NetworkPolicy agent: the policy controller of
// sigs.k8s.io/kube-network-policies (its pkg/networkpolicy, pinned in scripts/versions.env) run
// as a host process of the test node (tests/support/node.py). The controller takes the first
// packet of each connection from a netfilter queue and accepts or drops it as the
// NetworkPolicies of its source and destination pods say.
//
// Why not the module's own command: it reads only the in-cluster config (a ServiceAccount
// token under /var/run/secrets), and stops, removing its rules, only on SIGINT; this one takes
// a kubeconfig and stops on SIGTERM too.
//
// On kernels without the nftables queue expression (CONFIG_NFT_QUEUE unset; the CI machine's)
// the controller's own nftables table fails to load ("netlink receive: no such file or
// directory") and it logs that at each policy change; the node fixture then sends the packets
// to the same queue with iptables NFQUEUE rules (xt_NFQUEUE), see tests/support/node.py.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/kube-network-policies/pkg/networkpolicy"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster's API server (required)")
	nodeName := flag.String("node-name", "", "name of the Node whose pods this agent polices (required)")
	queueID := flag.Int("nfqueue-id", 100, "netfilter queue the packets to judge arrive on")
	klog.InitFlags(nil)
	flag.Parse()
	if *kubeconfig == "" || *nodeName == "" {
		fmt.Fprintln(os.Stderr, "kube-network-policies: --kubeconfig and --node-name are required")
		os.Exit(2)
	}
	if err := run(*kubeconfig, *nodeName, *queueID); err != nil {
		klog.ErrorS(err, "kube-network-policies stopped")
		os.Exit(1)
	}
}

func run(kubeconfig, nodeName string, queueID int) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("reading %s: %w", kubeconfig, err)
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	// NRI stays on (the default): with it off, v0.8.0 dereferences the absent NRI plugin for a
	// packet whose address is no known pod's. Without an NRI socket (containerd 1.6 has none)
	// the plugin only logs that it cannot connect, and pod addresses come from the API server.
	controller, err := networkpolicy.NewController(
		client,
		factory.Networking().V1().NetworkPolicies(),
		factory.Core().V1().Namespaces(),
		factory.Core().V1().Pods(),
		nil, nil, nil, nil, // no (Baseline)AdminNetworkPolicy: the chart uses NetworkPolicy only
		networkpolicy.Config{QueueID: queueID, NodeName: nodeName},
	)
	if err != nil {
		return err
	}
	factory.Start(ctx.Done())
	// Run returns once ctx is done, after closing the queue and deleting its nftables table.
	return controller.Run(ctx)
}
