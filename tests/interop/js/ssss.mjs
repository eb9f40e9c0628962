#!/usr/bin/env node
// Interop helper: Matrix secret storage ("SSSS", m.secret_storage.v1.aes-hmac-sha2,
// recovery keys, m.pbkdf2 passphrases) computed by matrix-js-sdk's OWN code, so the
// Rust implementation can be tested against the SDK rather than against our reading of it.
//
// Protocol: read ONE JSON request on stdin, write ONE JSON answer on stdout.
// On error: {"error": "..."} on stdout and exit code 1.
//
// Operations (field "op"):
//   encode_recovery_key {key_b64}                         -> {recovery_key}
//   decode_recovery_key {recovery_key}                    -> {key_b64}
//   passphrase_key      {passphrase, salt, iterations[, bits]} -> {key_b64}
//   key_check           {key_b64[, iv]}                   -> {iv, mac}
//   encrypt             {key_b64, name, secret[, iv]}     -> {iv, ciphertext, mac}
//   decrypt             {key_b64, name, iv, ciphertext, mac} -> {secret}
//
// Base64 formats:
//   * key_b64 (in and out) is UNPADDED standard base64 (alphabet +/) of the raw key
//     bytes; padded input is accepted too. key_b64 must decode to 32 bytes.
//   * iv, ciphertext, mac in answers are exactly what the SDK returns: PADDED standard
//     base64 (its encodeBase64 uses omitPadding: false), e.g. a 16-byte iv ends in "==".
//   * iv, ciphertext, mac in requests are handed to the SDK untouched; the SDK's
//     decodeBase64 accepts padded or unpadded and also the URL-safe alphabet.
//   * The optional "iv" of encrypt/key_check is passed to the SDK as given and used
//     as is; only a randomly generated iv gets bit 63 cleared (iv[8] &= 0x7f).
//
// Everything cryptographic below is the SDK's code; this file only parses and formats.

import encryptAESSecretStorageItem from "matrix-js-sdk/lib/utils/encryptAESSecretStorageItem.js";
import decryptAESSecretStorageItem from "matrix-js-sdk/lib/utils/decryptAESSecretStorageItem.js";
import { calculateKeyCheck } from "matrix-js-sdk/lib/secret-storage.js";
import {
    encodeRecoveryKey,
    decodeRecoveryKey,
    deriveRecoveryKeyFromPassphrase,
} from "matrix-js-sdk/lib/crypto-api/index.js";

const KEY_LEN = 32;

class RequestError extends Error {}

function field(req, name, type) {
    const v = req[name];
    if (typeof v !== type) {
        throw new RequestError(`field "${name}" must be a ${type}`);
    }
    return v;
}

function optionalString(req, name) {
    if (req[name] === undefined || req[name] === null) return undefined;
    return field(req, name, "string");
}

// Strict standard base64 (padded or not) -> bytes. Not crypto: input parsing only.
function keyFromB64(s, name = "key_b64") {
    if (typeof s !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.replace(/=+$/, "").length % 4 === 1) {
        throw new RequestError(`field "${name}" must be standard base64`);
    }
    const bytes = new Uint8Array(Buffer.from(s, "base64"));
    if (bytes.length !== KEY_LEN) {
        throw new RequestError(`field "${name}" must decode to ${KEY_LEN} bytes, got ${bytes.length}`);
    }
    return bytes;
}

function unpaddedB64(bytes) {
    return Buffer.from(bytes).toString("base64").replace(/=+$/, "");
}

const ops = {
    async encode_recovery_key(req) {
        const key = keyFromB64(req.key_b64);
        return { recovery_key: encodeRecoveryKey(key) };
    },

    async decode_recovery_key(req) {
        const rk = field(req, "recovery_key", "string");
        return { key_b64: unpaddedB64(decodeRecoveryKey(rk)) };
    },

    async passphrase_key(req) {
        const passphrase = field(req, "passphrase", "string");
        const salt = field(req, "salt", "string");
        const iterations = field(req, "iterations", "number");
        if (!Number.isInteger(iterations) || iterations < 1) {
            throw new RequestError(`field "iterations" must be a positive integer`);
        }
        let bits = 256;
        if (req.bits !== undefined) {
            bits = field(req, "bits", "number");
        }
        const key = await deriveRecoveryKeyFromPassphrase(passphrase, salt, iterations, bits);
        return { key_b64: unpaddedB64(key) };
    },

    async key_check(req) {
        const key = keyFromB64(req.key_b64);
        const { iv, mac } = await calculateKeyCheck(key, optionalString(req, "iv"));
        return { iv, mac };
    },

    async encrypt(req) {
        const key = keyFromB64(req.key_b64);
        const name = field(req, "name", "string");
        const secret = field(req, "secret", "string");
        const { iv, ciphertext, mac } = await encryptAESSecretStorageItem(secret, key, name, optionalString(req, "iv"));
        return { iv, ciphertext, mac };
    },

    async decrypt(req) {
        const key = keyFromB64(req.key_b64);
        const name = field(req, "name", "string");
        const data = {
            iv: field(req, "iv", "string"),
            ciphertext: field(req, "ciphertext", "string"),
            mac: field(req, "mac", "string"),
        };
        // Throws Error("Error decrypting secret <name>: bad MAC") on a MAC mismatch.
        const secret = await decryptAESSecretStorageItem(data, key, name);
        return { secret };
    },
};

async function readStdin() {
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    return Buffer.concat(chunks).toString("utf8");
}

async function main() {
    const text = await readStdin();
    let req;
    try {
        req = JSON.parse(text);
    } catch (e) {
        throw new RequestError(`request is not JSON: ${e.message}`);
    }
    if (req === null || typeof req !== "object" || Array.isArray(req)) {
        throw new RequestError("request must be a JSON object");
    }
    if (typeof req.op !== "string" || !Object.hasOwn(ops, req.op)) {
        throw new RequestError(`unknown op ${JSON.stringify(req.op)}; known: ${Object.keys(ops).join(", ")}`);
    }
    return ops[req.op](req);
}

try {
    const answer = await main();
    process.stdout.write(JSON.stringify(answer) + "\n");
} catch (e) {
    process.stdout.write(JSON.stringify({ error: String(e?.message ?? e) }) + "\n");
    process.exitCode = 1;
}
