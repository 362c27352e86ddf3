package row

import "encoding/asn1"

// OIDListExtension is the non-critical certificate extension in which the
// lab carries a service's tls_oids (a DER SEQUENCE OF OBJECT IDENTIFIER),
// under the private enterprise number 32473 that RFC 5612 reserves for
// documentation. A world's OID lists describe RSA-signed certificates with
// extensions in a given order, which certificates minted by the lab's ECDSA
// CA cannot reproduce: pkg/labserve writes this extension, and pkg/netprobe
// reads it when present and otherwise lists the OIDs it finds in the
// certificate.
var OIDListExtension = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 32473, 1, 1}
