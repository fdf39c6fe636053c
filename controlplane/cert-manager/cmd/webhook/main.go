// Command webhook serves cert-manager's admission webhook (defaulting, validation, and the
// CertificateRequest identity and approval checks) as a local process, from the cert-manager
// release this module requires.
//
// The webhook itself is cert-manager's: NewCertManagerWebhookServer builds its admission chain,
// resource scheme and certificate source from cert-manager's defaulted WebhookConfiguration.
// Only the serving is ours, because cert-manager's server.Run listens on every interface and the
// control plane must listen on loopback alone: the chain is registered on controller-runtime's
// webhook server bound to the host given by --listen (/mutate and /validate, as cert-manager
// does), which also answers /healthz so that a readiness probe proves the TLS certificate too.
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	config "github.com/cert-manager/cert-manager/internal/apis/config/webhook"
	"github.com/cert-manager/cert-manager/internal/apis/config/webhook/validation"
	cmwebhook "github.com/cert-manager/cert-manager/internal/webhook"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	cmadmission "github.com/cert-manager/cert-manager/pkg/webhook/admission"
	"github.com/cert-manager/cert-manager/pkg/webhook/options"

	"github.com/cert-manager/cert-manager/relay-tls-control-plane/internal/process"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "cert-manager webhook: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := options.NewWebhookConfiguration()
	if err != nil {
		return fmt.Errorf("building cert-manager's default webhook configuration: %w", err)
	}
	fs := pflag.NewFlagSet("webhook", pflag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:10250", "host:port to serve the admission webhook on (TLS)")
	fs.StringVar(&cfg.KubeConfig, "kubeconfig", "", "kubeconfig of the webhook's ServiceAccount (for its SubjectAccessReviews)")
	fs.StringVar(&cfg.TLSConfig.Filesystem.CertFile, "tls-cert-file", "", "serving certificate (PEM)")
	fs.StringVar(&cfg.TLSConfig.Filesystem.KeyFile, "tls-private-key-file", "", "serving certificate's private key (PEM)")
	logf.AddFlags(&cfg.Logging, fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	host, portText, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("--listen %q is not host:port: %w", *listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port <= 0 {
		return fmt.Errorf("--listen %q needs a port number above 0", *listen)
	}
	if cfg.KubeConfig == "" || cfg.TLSConfig.Filesystem.CertFile == "" || cfg.TLSConfig.Filesystem.KeyFile == "" {
		return fmt.Errorf("--kubeconfig, --tls-cert-file and --tls-private-key-file are required")
	}
	cfg.SecurePort = int32(port)
	// Nothing else listens: no healthz port of its own, no metrics.
	cfg.HealthzPort = 0
	if errs := validation.ValidateWebhookConfiguration(cfg, nil); len(errs) > 0 {
		return fmt.Errorf("invalid webhook configuration: %w", errs.ToAggregate())
	}

	return process.Run("webhook", &cfg.Logging, func(ctx context.Context) error {
		return serve(ctx, cfg, *listen, host, port)
	})
}

// serve runs cert-manager's admission chain on a webhook server bound to host:port (listen, as
// given) until ctx ends.
func serve(ctx context.Context, cfg *config.WebhookConfiguration, listen, host string, port int) error {
	log := logf.FromContext(ctx)

	srv, err := cmwebhook.NewCertManagerWebhookServer(log, *cfg)
	if err != nil {
		return err
	}
	hooks := webhook.NewServer(webhook.Options{
		Host:    host,
		Port:    port,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.GetCertificate = srv.CertificateSource.GetCertificate }},
	})
	hooks.Register("/mutate", cmadmission.NewCustomMutationWebhook(srv.MutationWebhook))
	hooks.Register("/validate", cmadmission.NewCustomValidationWebhook(srv.ResourceScheme, srv.ValidationWebhook))
	hooks.Register("/healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))

	log.Info("serving cert-manager's admission webhook", "address", listen)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.CertificateSource.Start(ctx) })
	g.Go(func() error { return hooks.Start(ctx) })
	return g.Wait()
}
