// A stand-in for github.com/Venafi/vcert/v5 (Venafi / CyberArk's client library), which the Go
// module proxy does not serve ("403 This module version is not available" for every version),
// so that cert-manager's controller, which links its Venafi issuer unconditionally, can be built.
// It declares only what cert-manager calls, and every client it would make fails with
// verror.ErrUnavailable: a Venafi Issuer reports that error; nothing else is affected. Written for
// this project; no code of vcert's is here.
module github.com/Venafi/vcert/v5

go 1.22
