#pragma once
// The Azure Blob XML documents the client reads (List Blobs pages) and
// writes (Put Block List), through libxml2. Error bodies have S3's shape
// (<Error><Code/><Message/></Error>): s3_xml.h's parse_s3_error reads them.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace xpscale::detail {

struct AzureListedBlob {
  std::string name;  // decoded (Encoded="true" names are percent-decoded)
  std::uint64_t size = 0;
  std::string etag;  // quoted, as Get Blob Properties gives it
};
struct AzureListPage {
  std::vector<AzureListedBlob> blobs;
  std::string next_marker;  // "" on the last page
};
// Throws ShardingError naming `url` for a body that is no EnumerationResults.
AzureListPage parse_azure_list_page(std::string_view body, const std::string& url);

// <BlockList><Latest>id</Latest>...</BlockList> for the base64 block ids.
std::string azure_block_list_xml(const std::vector<std::string>& block_ids);

}  // namespace xpscale::detail
