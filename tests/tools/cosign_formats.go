// Checks documents zeroimage writes against Go's own encoders, as cosign (sigstore's payload package,
// go-securesystemslib's dsse and encrypted packages) writes them: the same struct shapes and JSON
// tags, marshalled by encoding/json, must give the same bytes; PEM blocks re-encoded by encoding/pem
// must be the same text; signatures must verify with crypto/ecdsa. Standard library only.
//
// usage: go run cosign_formats.go PUBLIC_KEY PRIVATE_KEY PAYLOAD SIGNATURE ENVELOPE REFERENCE DIGEST
// Prints one "ok: ..." line per check, or the first failure and exits 1.
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"strconv"
)

// The shapes of sigstore's payload.SimpleContainerImage.
type simpleContainerImage struct {
	Critical critical               `json:"critical"`
	Optional map[string]interface{} `json:"optional"`
}

type critical struct {
	Identity identity `json:"identity"`
	Image    image    `json:"image"`
	Type     string   `json:"type"`
}

type identity struct {
	DockerReference string `json:"docker-reference"`
}

type image struct {
	DockerManifestDigest string `json:"docker-manifest-digest"`
}

// The shapes of go-securesystemslib's dsse.Envelope.
type envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     string      `json:"payload"`
	Signatures  []signature `json:"signatures"`
}

type signature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

// The shapes of go-securesystemslib's encrypted package.
type encryptedKey struct {
	KDF        scryptKDF       `json:"kdf"`
	Cipher     secretBoxCipher `json:"cipher"`
	Ciphertext []byte          `json:"ciphertext"`
}

type scryptKDF struct {
	Name   string       `json:"name"`
	Params scryptParams `json:"params"`
	Salt   []byte       `json:"salt"`
}

type scryptParams struct {
	N int `json:"N"`
	R int `json:"r"`
	P int `json:"p"`
}

type secretBoxCipher struct {
	Name  string `json:"name"`
	Nonce []byte `json:"nonce"`
}

func fail(format string, args ...interface{}) {
	fmt.Printf("FAILED: "+format+"\n", args...)
	os.Exit(1)
}

func read(path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	return data
}

// reencoded decodes the one PEM block of text and encodes it again as Go writes it.
func reencoded(text []byte, label string) (*pem.Block, bool) {
	block, rest := pem.Decode(text)
	if block == nil || block.Type != label || len(bytes.TrimSpace(rest)) != 0 {
		fail("not one %s PEM block", label)
	}
	return block, bytes.Equal(pem.EncodeToMemory(block), text)
}

func marshal(v interface{}) []byte {
	out, err := json.Marshal(v)
	if err != nil {
		fail("%v", err)
	}
	return out
}

func pae(kind string, body []byte) []byte {
	return []byte("DSSEv1 " + strconv.Itoa(len(kind)) + " " + kind + " " + strconv.Itoa(len(body)) + " " + string(body))
}

func main() {
	if len(os.Args) != 8 {
		fail("usage: PUBLIC_KEY PRIVATE_KEY PAYLOAD SIGNATURE ENVELOPE REFERENCE DIGEST")
	}
	publicText, privateText := read(os.Args[1]), read(os.Args[2])
	payload, sig, envelopeText := read(os.Args[3]), read(os.Args[4]), read(os.Args[5])
	reference, digest := os.Args[6], os.Args[7]

	block, same := reencoded(publicText, "PUBLIC KEY")
	if !same {
		fail("the public key PEM differs from encoding/pem's")
	}
	parsed, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		fail("public key: %v", err)
	}
	public, isECDSA := parsed.(*ecdsa.PublicKey)
	if !isECDSA || public.Curve.Params().Name != "P-256" {
		fail("public key is not ECDSA P-256")
	}
	fmt.Println("ok: public key PEM as Go writes it, ECDSA P-256")

	block, same = reencoded(privateText, "ENCRYPTED SIGSTORE PRIVATE KEY")
	if !same {
		fail("the private key PEM differs from encoding/pem's")
	}
	var key encryptedKey
	if err := json.Unmarshal(block.Bytes, &key); err != nil {
		fail("encrypted key JSON: %v", err)
	}
	if !bytes.Equal(marshal(key), block.Bytes) {
		fail("encrypted key JSON differs from encoding/json's:\n%s\n%s", block.Bytes, marshal(key))
	}
	if key.KDF.Name != "scrypt" || key.Cipher.Name != "nacl/secretbox" || key.KDF.Params != (scryptParams{65536, 8, 1}) ||
		len(key.KDF.Salt) != 32 || len(key.Cipher.Nonce) != 24 {
		fail("encrypted key parameters: %+v", key)
	}
	fmt.Println("ok: encrypted key JSON as go-securesystemslib writes it")

	expected := marshal(simpleContainerImage{
		Critical: critical{
			Identity: identity{DockerReference: reference},
			Image:    image{DockerManifestDigest: digest},
			Type:     "cosign container image signature",
		},
	})
	if !bytes.Equal(expected, payload) {
		fail("payload differs from encoding/json's:\n%s\n%s", payload, expected)
	}
	hash := sha256.Sum256(payload)
	if !ecdsa.VerifyASN1(public, hash[:], sig) {
		fail("the payload's signature does not verify")
	}
	fmt.Println("ok: payload as sigstore writes it, signature verified")

	var env envelope
	if err := json.Unmarshal(envelopeText, &env); err != nil {
		fail("envelope JSON: %v", err)
	}
	if !bytes.Equal(marshal(env), envelopeText) {
		fail("envelope differs from encoding/json's:\n%s\n%s", envelopeText, marshal(env))
	}
	body, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		fail("envelope payload: %v", err)
	}
	envelopeSig, err := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	if err != nil {
		fail("envelope signature: %v", err)
	}
	paeHash := sha256.Sum256(pae(env.PayloadType, body))
	if !ecdsa.VerifyASN1(public, paeHash[:], envelopeSig) {
		fail("the envelope's signature does not verify")
	}
	fmt.Println("ok: envelope as go-securesystemslib writes it, signature verified")
}
