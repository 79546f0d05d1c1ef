package status

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ParseNets parses a comma-separated list of networks for Service.Nets,
// as svr's --allow takes it: "10.0.0.0/8,127.0.0.1" (a bare address is a
// /32 or /128). IPv4 in IPv6 is unmapped, as the Service unmaps a client's
// address, so 127.0.0.0/8 matches a client at ::ffff:127.0.0.1. An empty
// or blank list is nil: everyone.
func ParseNets(s string) ([]netip.Prefix, error) {
	var nets []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("bad address %q", f)
			}
			nets = append(nets, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("bad CIDR %q", f)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		nets = append(nets, p.Masked())
	}
	if strings.TrimSpace(s) != "" && len(nets) == 0 {
		return nil, errors.New("no networks given")
	}
	return nets, nil
}
