// Command controller runs cert-manager's controllers as a local process, from the cert-manager
// release this module requires: the controllers cert-manager enables by default (issuers, the
// Certificate controllers, the CertificateRequest approver and the ca/selfsigned/acme/vault/venafi
// signers), after winning cert-manager's leader election on the Lease
// kube-system/cert-manager-controller.
//
// Everything the controllers do is cert-manager's; this main only assembles them the way
// cert-manager's own controller binary does, from cert-manager's defaulted
// ControllerConfiguration, with flags for what differs when it runs beside a local API server:
// its kubeconfig (its ServiceAccount's token), and metrics and healthz bound to the addresses
// given (loopback) instead of every interface.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	config "github.com/cert-manager/cert-manager/internal/apis/config/controller"
	configscheme "github.com/cert-manager/cert-manager/internal/apis/config/controller/scheme"
	defaults "github.com/cert-manager/cert-manager/internal/apis/config/controller/v1alpha1"
	"github.com/cert-manager/cert-manager/internal/apis/config/controller/validation"
	"github.com/cert-manager/cert-manager/internal/pem"
	configv1alpha1 "github.com/cert-manager/cert-manager/pkg/apis/config/controller/v1alpha1"
	"github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/healthz"
	dnsutil "github.com/cert-manager/cert-manager/pkg/issuer/acme/dns/util"
	logf "github.com/cert-manager/cert-manager/pkg/logs"

	"github.com/cert-manager/cert-manager/relay-tls-control-plane/internal/process"

	// The controllers and issuers register themselves with pkg/controller when imported, as in
	// cert-manager's own controller binary (the defaults package above imports the rest).
	_ "github.com/cert-manager/cert-manager/pkg/controller/acmechallenges"
	_ "github.com/cert-manager/cert-manager/pkg/controller/acmeorders"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificate-shim/ingresses"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/acme"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/vault"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/venafi"
)

// The Lease cert-manager's controller elects its leader with.
const leaseName = "cert-manager-controller"

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "cert-manager controller: %v\n", err)
		os.Exit(1)
	}
}

// defaultConfiguration is cert-manager's ControllerConfiguration with cert-manager's defaults.
func defaultConfiguration() (*config.ControllerConfiguration, error) {
	scheme, _, err := configscheme.NewSchemeAndCodecs()
	if err != nil {
		return nil, err
	}
	versioned := &configv1alpha1.ControllerConfiguration{}
	scheme.Default(versioned)
	cfg := &config.ControllerConfiguration{}
	if err := scheme.Convert(versioned, cfg, nil); err != nil {
		return nil, err
	}
	return cfg, nil
}

func run() error {
	cfg, err := defaultConfiguration()
	if err != nil {
		return fmt.Errorf("building cert-manager's default controller configuration: %w", err)
	}
	fs := pflag.NewFlagSet("controller", pflag.ContinueOnError)
	fs.StringVar(&cfg.KubeConfig, "kubeconfig", "", "kubeconfig of the controller's ServiceAccount")
	fs.StringVar(&cfg.ClusterResourceNamespace, "cluster-resource-namespace", cfg.ClusterResourceNamespace,
		"namespace of the Secrets that ClusterIssuers refer to")
	fs.StringVar(&cfg.LeaderElectionConfig.Namespace, "leader-election-namespace", cfg.LeaderElectionConfig.Namespace,
		"namespace of the leader election Lease")
	fs.StringVar(&cfg.MetricsListenAddress, "metrics-listen-address", "127.0.0.1:0", "host:port of the Prometheus metrics")
	fs.StringVar(&cfg.HealthzListenAddress, "healthz-listen-address", "127.0.0.1:0", "host:port of /livez")
	logf.AddFlags(&cfg.Logging, fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if cfg.KubeConfig == "" {
		return errors.New("--kubeconfig is required (the controller's own ServiceAccount token)")
	}
	if errs := validation.ValidateControllerConfiguration(cfg, nil); len(errs) > 0 {
		return fmt.Errorf("invalid controller configuration: %w", errs.ToAggregate())
	}

	return process.Run("controller", &cfg.Logging, func(ctx context.Context) error {
		return runControllers(ctx, cfg)
	})
}

// contextOptions maps the configuration onto the options of cert-manager's controller context.
func contextOptions(cfg *config.ControllerConfiguration) (controller.ContextOptions, error) {
	quantity := func(name, text string) (resource.Quantity, error) {
		q, err := resource.ParseQuantity(text)
		if err != nil {
			return q, fmt.Errorf("%s %q: %w", name, text, err)
		}
		return q, nil
	}
	http01 := cfg.ACMEHTTP01Config
	requestCPU, err := quantity("ACME HTTP01 solver CPU request", http01.SolverResourceRequestCPU)
	if err != nil {
		return controller.ContextOptions{}, err
	}
	requestMemory, err := quantity("ACME HTTP01 solver memory request", http01.SolverResourceRequestMemory)
	if err != nil {
		return controller.ContextOptions{}, err
	}
	limitCPU, err := quantity("ACME HTTP01 solver CPU limit", http01.SolverResourceLimitsCPU)
	if err != nil {
		return controller.ContextOptions{}, err
	}
	limitMemory, err := quantity("ACME HTTP01 solver memory limit", http01.SolverResourceLimitsMemory)
	if err != nil {
		return controller.ContextOptions{}, err
	}
	nameservers := cfg.ACMEDNS01Config.RecursiveNameservers
	if len(nameservers) == 0 {
		nameservers = dnsutil.RecursiveNameservers
	}
	return controller.ContextOptions{
		Kubeconfig:         cfg.KubeConfig,
		KubernetesAPIQPS:   cfg.KubernetesAPIQPS,
		KubernetesAPIBurst: cfg.KubernetesAPIBurst,
		Namespace:          cfg.Namespace,
		ACMEOptions: controller.ACMEOptions{
			HTTP01SolverImage:                 http01.SolverImage,
			HTTP01SolverResourceRequestCPU:    requestCPU,
			HTTP01SolverResourceRequestMemory: requestMemory,
			HTTP01SolverResourceLimitsCPU:     limitCPU,
			HTTP01SolverResourceLimitsMemory:  limitMemory,
			ACMEHTTP01SolverRunAsNonRoot:      http01.SolverRunAsNonRoot,
			HTTP01SolverRuntimeClassName:      http01.SolverRuntimeClassName,
			HTTP01SolverNameservers:           http01.SolverNameservers,
			HTTP01SolverExtraLabels:           http01.SolverExtraLabels,
			DNS01Nameservers:                  nameservers,
			DNS01CheckRetryPeriod:             cfg.ACMEDNS01Config.CheckRetryPeriod,
			DNS01CheckAuthoritative:           !cfg.ACMEDNS01Config.RecursiveNameserversOnly,
		},
		SchedulerOptions: controller.SchedulerOptions{MaxConcurrentChallenges: cfg.MaxConcurrentChallenges},
		IssuerOptions: controller.IssuerOptions{
			ClusterResourceNamespace:        cfg.ClusterResourceNamespace,
			ClusterIssuerAmbientCredentials: cfg.ClusterIssuerAmbientCredentials,
			IssuerAmbientCredentials:        cfg.IssuerAmbientCredentials,
		},
		IngressShimOptions: controller.IngressShimOptions{
			DefaultIssuerName:                 cfg.IngressShimConfig.DefaultIssuerName,
			DefaultIssuerKind:                 cfg.IngressShimConfig.DefaultIssuerKind,
			DefaultIssuerGroup:                cfg.IngressShimConfig.DefaultIssuerGroup,
			DefaultAutoCertificateAnnotations: cfg.IngressShimConfig.DefaultAutoCertificateAnnotations,
			ExtraCertificateAnnotations:       cfg.IngressShimConfig.ExtraCertificateAnnotations,
			GatewayAPIExtraProtocols:          sets.New(cfg.GatewayAPIConfig.ExtraProtocols...),
		},
		CertificateOptions: controller.CertificateOptions{
			EnableOwnerRef:                           cfg.EnableCertificateOwnerRef,
			CopiedAnnotationPrefixes:                 cfg.CopiedAnnotationPrefixes,
			CertificateRequestMinimumBackoffDuration: cfg.CertificateRequestMinimumBackoffDuration,
			CertificateRequestMaximumBackoffDuration: cfg.CertificateRequestMaximumBackoffDuration,
		},
		ConfigOptions: controller.ConfigOptions{
			EnableGatewayAPI:            cfg.GatewayAPIConfig.Enabled,
			EnableGatewayAPIListenerSet: cfg.GatewayAPIConfig.EnableListenerSet,
		},
	}, nil
}

func runControllers(rootCtx context.Context, cfg *config.ControllerConfiguration) error {
	log := logf.FromContext(rootCtx)
	limits := cfg.PEMSizeLimitsConfig
	pem.SetGlobalSizeLimits(pem.NewSizeLimitsFromConfig(
		limits.MaxCertificateSize, limits.MaxPrivateKeySize, limits.MaxChainLength, limits.MaxBundleSize))

	opts, err := contextOptions(cfg)
	if err != nil {
		return err
	}
	factory, err := controller.NewContextFactory(rootCtx, opts)
	if err != nil {
		return err
	}
	cmctx, err := factory.Build()
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(rootCtx)

	metricsListener, err := listen(ctx, "metrics", cfg.MetricsListenAddress)
	if err != nil {
		return err
	}
	cmctx.Metrics.SetupACMECollector(cmctx.SharedInformerFactory.Acme().V1().Challenges().Lister())
	cmctx.Metrics.SetupCertificateCollector(cmctx.SharedInformerFactory.Certmanager().V1().Certificates().Lister())
	cmctx.Metrics.SetupIssuerCollector(cmctx.SharedInformerFactory.Certmanager().V1().Issuers().Lister())
	cmctx.Metrics.SetupClusterIssuerCollector(cmctx.SharedInformerFactory.Certmanager().V1().ClusterIssuers().Lister())
	metrics := cmctx.Metrics.NewServer(metricsListener)
	g.Go(func() error {
		if err := metrics.Serve(metricsListener); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return metrics.Shutdown(shutdown) //nolint:contextcheck // the root context is already done
	})

	healthzListener, err := listen(ctx, "healthz", cfg.HealthzListenAddress)
	if err != nil {
		return err
	}
	health := healthz.NewServer(cfg.LeaderElectionConfig.HealthzTimeout)
	g.Go(func() error { return health.Start(ctx, healthzListener) })

	elected := make(chan struct{})
	g.Go(func() error { return leaderElection(ctx, cfg, factory, health, elected) })
	select {
	case <-ctx.Done():
		return g.Wait()
	case <-elected:
	}

	enabled := sets.New(defaults.DefaultEnabledControllers...)
	for name, constructor := range controller.Known() {
		if !enabled.Has(name) {
			continue
		}
		c, err := constructor(factory)
		if err != nil {
			return fmt.Errorf("starting cert-manager controller %s: %w", name, err)
		}
		log.V(logf.InfoLevel).Info("starting controller", "controller", name)
		g.Go(func() error { return c.Run(cfg.NumberOfConcurrentWorkers, ctx) })
	}
	cmctx.SharedInformerFactory.Start(ctx.Done())
	cmctx.KubeSharedInformerFactory.Start(ctx.Done())
	cmctx.HTTP01ResourceMetadataInformersFactory.Start(ctx.Done())

	err = g.Wait()
	cmctx.HTTP01ResourceMetadataInformersFactory.Shutdown()
	cmctx.KubeSharedInformerFactory.Shutdown()
	cmctx.SharedInformerFactory.Shutdown()
	return err
}

func listen(ctx context.Context, what, address string) (net.Listener, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", address)
	if err != nil {
		return nil, fmt.Errorf("listening for %s on %s: %w", what, address, err)
	}
	logf.FromContext(ctx).Info("listening", "for", what, "address", l.Addr().String())
	return l, nil
}

// leaderElection campaigns for the Lease cert-manager's controller uses and closes elected once
// this process leads; losing the lease afterwards is an error that stops the process, as in
// cert-manager.
func leaderElection(ctx context.Context, cfg *config.ControllerConfiguration, factory *controller.ContextFactory,
	health *healthz.Server, elected chan<- struct{}) error {
	election := cfg.LeaderElectionConfig
	lectx, err := factory.Build("leader-election")
	if err != nil {
		return err
	}
	host, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("hostname for the leader election identity: %w", err)
	}
	lock, err := resourcelock.NewWithLabels(resourcelock.LeasesResourceLock, election.Namespace, leaseName,
		lectx.Client.CoreV1(), lectx.Client.CoordinationV1(),
		resourcelock.ResourceLockConfig{
			// Stable across restarts, so a restarted process takes its own Lease back at once.
			Identity:      host + "-external-cert-manager-controller",
			EventRecorder: lectx.Recorder,
		},
		map[string]string{"app.kubernetes.io/managed-by": "cert-manager"})
	if err != nil {
		return fmt.Errorf("leader election lock: %w", err)
	}
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   election.LeaseDuration,
		RenewDeadline:   election.RenewDeadline,
		RetryPeriod:     election.RetryPeriod,
		ReleaseOnCancel: true,
		WatchDog:        health.LeaderHealthzAdaptor,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) { close(elected) },
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		return err
	}
	// Run returns when ctx ends or when the lease is lost.
	elector.Run(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return errors.New("lost the leader election lease")
}
