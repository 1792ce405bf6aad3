#pragma once
// The S3 XML documents the client reads (error bodies, ListObjectsV2 pages,
// multipart uploads) and writes (CompleteMultipartUpload), through libxml2.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace xpscale::detail {

struct S3ErrorDoc {
  std::string code;     // e.g. "NoSuchKey", "SlowDown"; "" when body is not one
  std::string message;  // S3's human text
};
// Never throws: a body that is not an S3 error document gives {}.
S3ErrorDoc parse_s3_error(std::string_view body);

struct ListedObject {
  std::string key;
  std::uint64_t size = 0;
  std::string etag;
};
struct ListPage {
  std::vector<ListedObject> objects;
  bool truncated = false;
  std::string next_token;  // NextContinuationToken
};
// Throws ShardingError naming `url` for a body that is no ListBucketResult.
ListPage parse_list_page(std::string_view body, const std::string& url);

// The UploadId of an InitiateMultipartUploadResult; throws like parse_list_page.
std::string parse_upload_id(std::string_view body, const std::string& url);

// <CompleteMultipartUpload> for parts 1..etags.size().
std::string complete_upload_xml(const std::vector<std::string>& etags);

}  // namespace xpscale::detail
