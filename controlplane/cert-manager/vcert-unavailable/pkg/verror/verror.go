// Package verror holds the errors of the stand-in for Venafi's client library.
package verror

import "errors"

// ErrUnavailable is what every operation of the stand-in returns.
var ErrUnavailable = errors.New("Venafi issuers are not available in this build: the Go module proxy does not serve github.com/Venafi/vcert/v5, so the control plane's cert-manager is built with a stand-in that has no Venafi client")

// ServerUnavailableError is the sentinel cert-manager treats as a network error.
var ServerUnavailableError = errors.New("server unavailable")
