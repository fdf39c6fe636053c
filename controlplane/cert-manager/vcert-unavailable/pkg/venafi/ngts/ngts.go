// Package ngts is the stand-in's ngts connector: every call fails with verror.ErrUnavailable.
package ngts

import (
	"github.com/Venafi/vcert/v5/pkg/endpoint"
	"github.com/Venafi/vcert/v5/pkg/venafi/internal/unavailable"
)

// Connector is never made (vcert.NewClient fails); its methods fail too (those it shares with
// the other services' connectors come from unavailable.Connector).
type Connector struct{ unavailable.Connector }

var _ endpoint.Connector = (*Connector)(nil)

// GetType names the service.
func (c *Connector) GetType() endpoint.ConnectorType { return endpoint.ConnectorTypeNGTS }
