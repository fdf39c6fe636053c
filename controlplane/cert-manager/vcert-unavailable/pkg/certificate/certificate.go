// Package certificate holds the request and result types cert-manager fills in and reads.
package certificate

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"time"

	"github.com/Venafi/vcert/v5/pkg/util"
)

// ChainOption orders the chain of a retrieved certificate.
type ChainOption int

// ChainOptionRootLast puts the root last.
const ChainOptionRootLast ChainOption = 1

// CSrOriginOption says who made the CSR.
type CSrOriginOption int

// UserProvidedCSR: the caller did.
const UserProvidedCSR CSrOriginOption = 1

// CustomFieldType is the kind of a custom field.
type CustomFieldType int

// The custom field kinds cert-manager sets.
const (
	CustomFieldPlain CustomFieldType = iota
	CustomFieldOrigin
)

// CustomField is one custom field of a request.
type CustomField struct {
	Type  CustomFieldType
	Name  string
	Value string
}

// Request is a certificate request.
type Request struct {
	Subject          pkix.Name
	ValidityDuration *time.Duration
	IssuerHint       util.IssuerHint
	ChainOption      ChainOption
	CustomFields     []CustomField
	FriendlyName     string
	CsrOrigin        CSrOriginOption
	PickupID         string
	Timeout          time.Duration
	csr              []byte
}

// NewRequest starts a request from a certificate template.
func NewRequest(cert *x509.Certificate) *Request {
	return &Request{Subject: cert.Subject}
}

// SetCSR sets the CSR (PEM) to send.
func (r *Request) SetCSR(csr []byte) error {
	r.csr = append([]byte(nil), csr...)
	return nil
}

// PEMCollection is a retrieved certificate and its chain.
type PEMCollection struct {
	Certificate string
	PrivateKey  string
	Chain       []string
}
