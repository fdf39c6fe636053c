// Package endpoint holds the connector interface and the types cert-manager uses with it.
package endpoint

import (
	"github.com/Venafi/vcert/v5/pkg/certificate"
	"github.com/Venafi/vcert/v5/pkg/verror"
)

// ConnectorType names a kind of Venafi service.
type ConnectorType int

// The kinds cert-manager knows.
const (
	ConnectorTypeUndefined ConnectorType = iota
	ConnectorTypeTPP
	ConnectorTypeCloud
	ConnectorTypeNGTS
)

// Authentication is a set of credentials.
type Authentication struct {
	User         string
	Password     string
	APIKey       string
	AccessToken  string
	ClientId     string
	ClientSecret string
	Scope        string
	TokenURL     string
}

// Connector is a client of one Venafi service.
type Connector interface {
	GetType() ConnectorType
	Ping() error
	ReadZoneConfiguration() (*ZoneConfiguration, error)
	RequestCertificate(req *certificate.Request) (string, error)
	RetrieveCertificate(req *certificate.Request) (*certificate.PEMCollection, error)
}

// ZoneConfiguration is a zone's defaults and policy.
type ZoneConfiguration struct{}

// UpdateCertificateRequest applies the zone's defaults (none here).
func (z *ZoneConfiguration) UpdateCertificateRequest(*certificate.Request) {}

// ValidateCertificateRequest checks a request against the zone's policy: unavailable.
func (z *ZoneConfiguration) ValidateCertificateRequest(*certificate.Request) error {
	return verror.ErrUnavailable
}

// ErrCertificatePending: the certificate is not issued yet.
type ErrCertificatePending struct {
	CertificateID string
	Status        string
}

func (e ErrCertificatePending) Error() string {
	return "certificate " + e.CertificateID + " is pending"
}

// ErrRetrieveCertificateTimeout: retrieving the certificate timed out.
type ErrRetrieveCertificateTimeout struct {
	CertificateID string
}

func (e ErrRetrieveCertificateTimeout) Error() string {
	return "timed out retrieving certificate " + e.CertificateID
}
