// Prints what @azure/storage-blob (pinned by package-lock.json) sends for
// given requests: method, URL, headers, the Shared Key string to sign and
// the Authorization header. azure_signer_test.cpp compares ours with them.
//
// stdin: a JSON array of cases
//   {op: "get" | "properties" | "list" | "put" | "block" | "blocklist",
//    account, key, container_url, blob, offset, count, if_match,
//    prefix, marker, max_results, body, block_id, block_ids, date}, or
//   {op: "sas", ...} (below)
// stdout: a JSON array, one {method, url, headers: [[name, value]...],
//   string_to_sign, authorization} per case.
// Nothing is sent: the pipeline's HTTP client records the request and fails.
"use strict";
const crypto = require("node:crypto");
const { ContainerClient, StorageSharedKeyCredential } = require("@azure/storage-blob");

// The string to sign is what the signer feeds its HMAC.
let lastSigned = null;
const createHmac = crypto.createHmac;
crypto.createHmac = function (...args) {
  const h = createHmac.apply(this, args);
  const update = h.update.bind(h);
  h.update = (data, ...rest) => {
    lastSigned = typeof data === "string" ? data : Buffer.from(data).toString("utf8");
    return update(data, ...rest);
  };
  return h;
};

async function run(c) {
  // x-ms-date comes from new Date().toUTCString(): fixed per case.
  const toUTCString = Date.prototype.toUTCString;
  Date.prototype.toUTCString = function () { return c.date; };
  let sent = null;
  const httpClient = {
    sendRequest: async (request) => {
      sent = request;
      throw new Error("recorded, not sent");
    },
  };
  const credential = new StorageSharedKeyCredential(c.account, c.key);
  const container = new ContainerClient(c.container_url, credential,
                                        { httpClient, retryOptions: { maxTries: 1 } });
  lastSigned = null;
  try {
    const blob = c.blob === undefined ? null : container.getBlockBlobClient(c.blob);
    const conditions = c.if_match ? { ifMatch: c.if_match } : undefined;
    if (c.op === "get") await blob.download(c.offset, c.count, { conditions });
    else if (c.op === "properties") await blob.getProperties({ conditions });
    else if (c.op === "put") await blob.upload(c.body, Buffer.byteLength(c.body));
    else if (c.op === "block") await blob.stageBlock(c.block_id, c.body, Buffer.byteLength(c.body));
    else if (c.op === "blocklist") await blob.commitBlockList(c.block_ids);
    else if (c.op === "list") {
      const opts = {};
      if (c.prefix) opts.prefix = c.prefix;
      await container.listBlobsFlat(opts)
        .byPage({ continuationToken: c.marker || undefined, maxPageSize: c.max_results })
        .next();
    } else throw new Error("unknown op " + c.op);
  } catch (e) {
    if (sent === null) throw e;
  } finally {
    Date.prototype.toUTCString = toUTCString;
  }
  const headers = [];
  // A core-http-compat HttpHeaders (headersArray) or a core-rest-pipeline one (iterable).
  const list = typeof sent.headers.headersArray === "function"
    ? sent.headers.headersArray().map((h) => [h.name, h.value])
    : [...sent.headers];
  for (const [name, value] of list) headers.push([name, String(value)]);
  return {
    method: sent.method,
    url: sent.url,
    headers,
    string_to_sign: lastSigned,
    authorization: sent.headers.get("authorization"),
  };
}

// An account SAS for containers and blobs (read, list, write, create),
// made with the SDK for the Azurite tests: {op: "sas", account, key,
// expires (ISO time)} -> {sas}.
function sas(c) {
  const { generateAccountSASQueryParameters, AccountSASPermissions, AccountSASResourceTypes,
          AccountSASServices, SASProtocol } = require("@azure/storage-blob");
  const credential = new StorageSharedKeyCredential(c.account, c.key);
  const token = generateAccountSASQueryParameters({
    expiresOn: new Date(c.expires),
    permissions: AccountSASPermissions.parse("rwlc"),
    resourceTypes: AccountSASResourceTypes.parse("sco").toString(),
    services: AccountSASServices.parse("b").toString(),
    protocol: SASProtocol.HttpsAndHttp,
    version: c.version,
  }, credential).toString();
  return { sas: token };
}

(async () => {
  const input = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
  const out = [];
  for (const c of input) out.push(c.op === "sas" ? sas(c) : await run(c));
  process.stdout.write(JSON.stringify(out));
})().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + "\n");
  process.exit(1);
});
