// Package vcert stands in for Venafi's client library (see this module's go.mod): NewClient
// always fails with verror.ErrUnavailable.
package vcert

import (
	"net/http"

	"github.com/Venafi/vcert/v5/pkg/endpoint"
	"github.com/Venafi/vcert/v5/pkg/verror"
)

// Config holds what cert-manager fills in to make a client.
type Config struct {
	ConnectorType   endpoint.ConnectorType
	BaseUrl         string
	Zone            string
	LogVerbose      bool
	ConnectionTrust string
	Credentials     *endpoint.Authentication
	Client          *http.Client
}

// NewClient fails: there is no Venafi client in this build.
func NewClient(_ *Config, _ ...any) (endpoint.Connector, error) {
	return nil, verror.ErrUnavailable
}
