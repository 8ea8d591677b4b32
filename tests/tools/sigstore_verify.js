// Verifies a Sigstore bundle with @sigstore/verify (npm), trusting one public key and nothing else:
// no transparency log, certificate authority or timestamp is required, as for an offline key-based
// signature. The key is looked up by its hint, computed here as sigstore-go computes it (base64 of
// the SHA-256 of its PKIX DER), so a bundle naming another key fails.
//
// usage: node sigstore_verify.js NODE_MODULES BUNDLE PUBLIC_KEY_PEM [ARTIFACT]
// Prints "verified" (and, for a DSSE bundle, the payload in base64) and exits 0, or prints the
// verifier's error and exits 1.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const [modules, bundlePath, keyPath, artifactPath] = process.argv.slice(2);
const load = (name) => require(path.join(modules, name));
const { bundleFromJSON } = load('@sigstore/bundle');
const { toSignedEntity, toTrustMaterial, Verifier } = load('@sigstore/verify');

try {
  const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(bundlePath, 'utf8')));
  const publicKey = crypto.createPublicKey(fs.readFileSync(keyPath, 'utf8'));
  const keyId = crypto
    .createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('base64');
  const keys = (hint) => {
    if (hint !== keyId) {
      throw new Error(`the bundle names key ${hint}, not the trusted key ${keyId}`);
    }
    return { publicKey, validFor: () => true };
  };
  const trust = toTrustMaterial(
    { certificateAuthorities: [], timestampAuthorities: [], tlogs: [], ctlogs: [] },
    keys,
  );
  const verifier = new Verifier(trust, {
    tlogThreshold: 0,
    ctlogThreshold: 0,
    timestampThreshold: 0,
  });
  const artifact = artifactPath ? fs.readFileSync(artifactPath) : undefined;
  verifier.verify(toSignedEntity(bundle, artifact));
  console.log('verified');
  if (bundle.content.$case === 'dsseEnvelope') {
    console.log(Buffer.from(bundle.content.dsseEnvelope.payload).toString('base64'));
  }
} catch (error) {
  console.log(`refused: ${error.code || ''} ${error.message}`);
  process.exit(1);
}
