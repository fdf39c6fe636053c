// Package util holds the request hint type cert-manager sets.
package util

// IssuerHint names which issuers a request may be sent to.
type IssuerHint int

// IssuerHintAllIssuers allows any issuer.
const IssuerHintAllIssuers IssuerHint = 0
