#pragma once
// The Azure Blob Storage Source: az://container/blob and
// https://ACCOUNT.blob.core.windows.net/container/blob URLs (and, with an
// emulator endpoint configured, http(s) URLs under that endpoint). See
// source.h for the contract every Source keeps; reads, retries and the
// shared connection budget are those of the S3 Source (s3.h), on the same
// libcurl layer.
//
// Requests: List Blobs (restype=container&comp=list, paged with marker /
// NextMarker), Get Blob Properties (HEAD: Content-Length, ETag), Get Blob
// with x-ms-range and If-Match (a blob replaced mid-read is an error naming
// it), Put Blob, and Put Block + Put Block List above a size. Signed with
// Shared Key (HMAC-SHA256 of the account key) or authorised by a SAS token;
// anonymous without either (public containers).
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "xpscale/sharding/s3.h"  // TransferOptions
#include "xpscale/sharding/source.h"

namespace xpscale {

// Never printed, logged or put in an error message (account_key,
// sas_token): errors name the account at most.
struct AzureOptions {
  std::string account;      // storage account name
  std::string account_key;  // base64; "" without Shared Key
  std::string sas_token;    // the query string of a SAS, without '?'; "" without
  // "scheme://host[:port][/path]" under which containers live; "" means
  // https://<account>.blob.core.windows.net. Azurite's path-style
  // endpoint is http://127.0.0.1:10000/devstoreaccount1.
  std::string endpoint;
  TransferOptions transfer;
  // put() sends blobs larger than this as Put Block (transfer.part_size
  // each, up to transfer.max_parallel at once) + Put Block List.
  std::uint64_t block_threshold = std::uint64_t{64} << 20;
  unsigned list_page_size = 5000;  // maxresults of each List Blobs page
};

// Configuration the way the Azure CLI finds it:
// - AZURE_STORAGE_CONNECTION_STRING ("AccountName=...;AccountKey=...",
//   "SharedAccessSignature=...", "BlobEndpoint=...",
//   "DefaultEndpointsProtocol=...", "EndpointSuffix=...",
//   "UseDevelopmentStorage=true" for Azurite's defaults), else
// - AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN
//   (the key wins when both are set).
// Throws ShardingError naming the variable and the element at fault (never
// a value) for a malformed connection string, an account key that is not
// base64, a key or SAS without an account, or a BlobEndpoint that is not an
// http(s) URL.
AzureOptions azure_options_from_env();

// The Source for Azure Blob URLs. Thread-safe; keep one per process.
std::shared_ptr<Source> make_azure_source(AzureOptions options = azure_options_from_env());

// True for URLs the Azure Source serves: az://, https://*.blob.core.windows.net,
// and http(s) URLs under the BlobEndpoint of AZURE_STORAGE_CONNECTION_STRING
// (read now; a malformed one counts as none). Never throws.
bool is_azure_url(const Url& url);

}  // namespace xpscale
