// Package fake exists so that `go mod tidy` finds every package cert-manager's own tests import;
// nothing here is built into the control plane.
package fake
