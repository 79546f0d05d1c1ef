package main

import (
	"context"

	"github.com/tcplab/tcplab/internal/endpoint"
)

// wpsTLSFlags are wps's TLS flags: with --tls-ca every connection, to one
// host or to each of --hosts, is TLS and the server must prove itself with a
// certificate from that CA for the name typed.
type wpsTLSFlags struct{ ca, cert, key *string }

func addWPSTLSFlags(fs *flagSet) wpsTLSFlags {
	return wpsTLSFlags{
		ca:   fs.String("tls-ca", "", "speak TLS, trusting only servers whose certificate is signed by a CA in this PEM `file`"),
		cert: fs.String("tls-cert", "", "with --tls-ca: present the certificate in this PEM `file` (for a server with --tls-client-ca)"),
		key:  fs.String("tls-key", "", "the private key of --tls-cert, a PEM `file`"),
	}
}

// check refuses a combination of the flags that cannot work: a usage
// error.
func (f wpsTLSFlags) check() error {
	if err := checkKeyPair(*f.cert, *f.key); err != nil {
		return err
	}
	if *f.cert != "" && *f.ca == "" {
		return usagef("--tls-cert needs --tls-ca (the CA that signed the server's certificate)")
	}
	return nil
}

// checkKeyPair refuses --tls-cert without --tls-key and the other way
// round, for svr and wps alike: a usage error.
func checkKeyPair(cert, key string) error {
	switch {
	case cert != "" && key == "":
		return usagef("--tls-cert needs --tls-key (the certificate's private key)")
	case key != "" && cert == "":
		return usagef("--tls-key needs --tls-cert")
	}
	return nil
}

// apply returns ctx carrying the TLS configuration for endpoint.Dial when
// --tls-ca is given (after check), else ctx itself. An unusable file is a
// one-line error naming it.
func (f wpsTLSFlags) apply(ctx context.Context) (context.Context, error) {
	if *f.ca == "" {
		return ctx, nil
	}
	cfg, err := endpoint.ClientTLS(*f.ca, *f.cert, *f.key)
	if err != nil {
		return nil, err
	}
	return endpoint.WithTLS(ctx, cfg), nil
}
