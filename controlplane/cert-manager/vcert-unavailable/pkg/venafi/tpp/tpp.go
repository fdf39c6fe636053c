// Package tpp is the stand-in's tpp connector: every call fails with verror.ErrUnavailable.
package tpp

import (
	"github.com/Venafi/vcert/v5/pkg/certificate"
	"github.com/Venafi/vcert/v5/pkg/endpoint"
	"github.com/Venafi/vcert/v5/pkg/venafi/internal/unavailable"
	"github.com/Venafi/vcert/v5/pkg/verror"
)

// Connector is never made (vcert.NewClient fails); its methods fail too (those it shares with
// the other services' connectors come from unavailable.Connector).
type Connector struct{ unavailable.Connector }

var _ endpoint.Connector = (*Connector)(nil)

// GetType names the service.
func (c *Connector) GetType() endpoint.ConnectorType { return endpoint.ConnectorTypeTPP }

// ErrCertNotFound: no such certificate.
type ErrCertNotFound struct{}

func (e *ErrCertNotFound) Error() string { return "certificate not found" }

// OauthRefreshTokenResponse is the token pair GetRefreshToken returns.
type OauthRefreshTokenResponse struct {
	Access_token  string //nolint:revive // the field name cert-manager reads
	Refresh_token string //nolint:revive
}

// OauthVerifyTokenResponse is what VerifyAccessToken returns.
type OauthVerifyTokenResponse struct{}

// ResetCertificate fails.
func (c *Connector) ResetCertificate(*certificate.Request, bool) error { return verror.ErrUnavailable }

// VerifyAccessToken fails.
func (c *Connector) VerifyAccessToken(*endpoint.Authentication) (OauthVerifyTokenResponse, error) {
	return OauthVerifyTokenResponse{}, verror.ErrUnavailable
}

// GetRefreshToken fails.
func (c *Connector) GetRefreshToken(*endpoint.Authentication) (OauthRefreshTokenResponse, error) {
	return OauthRefreshTokenResponse{}, verror.ErrUnavailable
}
