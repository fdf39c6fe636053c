// Package unavailable holds the part the stand-in's cloud, ngts and tpp connectors share: a
// Connector whose every call fails with verror.ErrUnavailable. Each of those packages embeds it
// in its own Connector type (cert-manager asserts on *tpp.Connector, *cloud.Connector and
// *ngts.Connector) and adds only GetType and what cert-manager calls on that service alone.
package unavailable

import (
	"github.com/Venafi/vcert/v5/pkg/certificate"
	"github.com/Venafi/vcert/v5/pkg/endpoint"
	"github.com/Venafi/vcert/v5/pkg/verror"
)

// Connector is the shared failing half of every stand-in connector; it has no GetType, which
// each service's Connector declares.
type Connector struct{}

// Ping fails.
func (c *Connector) Ping() error { return verror.ErrUnavailable }

// Authenticate fails.
func (c *Connector) Authenticate(*endpoint.Authentication) error { return verror.ErrUnavailable }

// ReadZoneConfiguration fails.
func (c *Connector) ReadZoneConfiguration() (*endpoint.ZoneConfiguration, error) {
	return nil, verror.ErrUnavailable
}

// RequestCertificate fails.
func (c *Connector) RequestCertificate(*certificate.Request) (string, error) {
	return "", verror.ErrUnavailable
}

// RetrieveCertificate fails.
func (c *Connector) RetrieveCertificate(*certificate.Request) (*certificate.PEMCollection, error) {
	return nil, verror.ErrUnavailable
}
