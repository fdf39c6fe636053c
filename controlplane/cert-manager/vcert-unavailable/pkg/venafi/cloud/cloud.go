// Package cloud is the stand-in's cloud connector: every call fails with verror.ErrUnavailable.
package cloud

import (
	"github.com/Venafi/vcert/v5/pkg/certificate"
	"github.com/Venafi/vcert/v5/pkg/endpoint"
	"github.com/Venafi/vcert/v5/pkg/verror"
)

// Connector is never made (vcert.NewClient fails); its methods fail too.
type Connector struct{}

var _ endpoint.Connector = (*Connector)(nil)

// GetType names the service.
func (c *Connector) GetType() endpoint.ConnectorType { return endpoint.ConnectorTypeCloud }

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
