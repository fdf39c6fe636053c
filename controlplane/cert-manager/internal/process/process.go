// Package process holds what the controller and webhook mains share once their flags are parsed
// and checked: cert-manager's logging set up from the flags, and a context that ends on SIGINT or
// SIGTERM. Flags, configuration and what each process serves stay in its own main.
package process

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	logf "github.com/cert-manager/cert-manager/pkg/logs"
	logsapi "k8s.io/component-base/logs/api/v1"
)

// Run applies the logging flags, then runs body with a context that carries a logger named name
// and is cancelled on SIGINT or SIGTERM; the logs are flushed when body returns.
func Run(name string, logging *logsapi.LoggingConfiguration, body func(context.Context) error) error {
	logf.InitLogs()
	defer logf.FlushLogs()
	if err := logf.ValidateAndApply(logging); err != nil {
		return fmt.Errorf("logging flags: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return body(logf.NewContext(ctx, logf.Log, name))
}
