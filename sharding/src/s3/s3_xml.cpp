#include "s3_xml.h"

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <charconv>
#include <memory>

#include "xpscale/sharding/error.h"

namespace xpscale::detail {

namespace {

struct DocFree {
  void operator()(xmlDoc* d) const { xmlFreeDoc(d); }
};
using Doc = std::unique_ptr<xmlDoc, DocFree>;

// The one boundary to libxml2's parser: no network, no entity expansion
// from outside, errors kept quiet (they become our own exceptions).
Doc parse(std::string_view body) {
  if (body.empty()) return nullptr;
  return Doc(xmlReadMemory(body.data(), static_cast<int>(body.size()), "s3.xml", nullptr,
                           XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING));
}

bool named(const xmlNode* n, const char* name) {
  return n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, BAD_CAST name) == 0;
}

std::string text(const xmlNode* n) {
  xmlChar* s = xmlNodeGetContent(n);
  std::string out = s != nullptr ? reinterpret_cast<const char*>(s) : "";
  xmlFree(s);
  return out;
}

const xmlNode* child(const xmlNode* parent, const char* name) {
  for (const xmlNode* c = parent->children; c != nullptr; c = c->next) {
    if (named(c, name)) return c;
  }
  return nullptr;
}

std::string child_text(const xmlNode* parent, const char* name) {
  const xmlNode* c = child(parent, name);
  return c != nullptr ? text(c) : "";
}

const xmlNode* root_named(const Doc& doc, const char* name) {
  if (!doc) return nullptr;
  const xmlNode* root = xmlDocGetRootElement(doc.get());
  return root != nullptr && named(root, name) ? root : nullptr;
}

std::string quoted(std::string etag) {
  if (!etag.empty() && etag.front() != '"' && !etag.starts_with("W/")) etag = '"' + etag + '"';
  return etag;
}

}  // namespace

S3ErrorDoc parse_s3_error(std::string_view body) {
  const Doc doc = parse(body);
  const xmlNode* root = root_named(doc, "Error");
  if (root == nullptr) return {};
  return {child_text(root, "Code"), child_text(root, "Message")};
}

ListPage parse_list_page(std::string_view body, const std::string& url) {
  const Doc doc = parse(body);
  const xmlNode* root = root_named(doc, "ListBucketResult");
  if (root == nullptr)
    throw ShardingError(url + ": the listing is not a ListBucketResult document");
  ListPage page;
  page.truncated = child_text(root, "IsTruncated") == "true";
  page.next_token = child_text(root, "NextContinuationToken");
  for (const xmlNode* c = root->children; c != nullptr; c = c->next) {
    if (!named(c, "Contents")) continue;
    ListedObject o{child_text(c, "Key"), 0, quoted(child_text(c, "ETag"))};
    const std::string size = child_text(c, "Size");
    const auto [end, ec] = std::from_chars(size.data(), size.data() + size.size(), o.size);
    if (ec != std::errc() || end != size.data() + size.size()) {
      throw ShardingError(url + ": the listing gives object \"" + o.key + "\" a bad Size \"" +
                          size + "\"");
    }
    page.objects.push_back(std::move(o));
  }
  if (page.truncated && page.next_token.empty()) {
    throw ShardingError(url + ": a truncated listing page without NextContinuationToken");
  }
  return page;
}

std::string parse_upload_id(std::string_view body, const std::string& url) {
  const Doc doc = parse(body);
  const xmlNode* root = root_named(doc, "InitiateMultipartUploadResult");
  const std::string id = root != nullptr ? child_text(root, "UploadId") : "";
  if (id.empty()) throw ShardingError(url + ": the multipart upload answer carries no UploadId");
  return id;
}

std::string complete_upload_xml(const std::vector<std::string>& etags) {
  // ETags are quoted hex strings; '"' needs no escaping in element text.
  std::string xml = "<CompleteMultipartUpload>";
  for (std::size_t i = 0; i < etags.size(); ++i) {
    xml += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>" + etags[i] +
           "</ETag></Part>";
  }
  return xml + "</CompleteMultipartUpload>";
}

}  // namespace xpscale::detail
