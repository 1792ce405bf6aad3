#include "azure_xml.h"

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <charconv>
#include <memory>

#include "shared_key.h"
#include "xpscale/sharding/error.h"

namespace xpscale::detail {

namespace {

struct DocFree {
  void operator()(xmlDoc* d) const { xmlFreeDoc(d); }
};
using Doc = std::unique_ptr<xmlDoc, DocFree>;

// As s3_xml.cpp: no network, no outside entities, errors kept quiet.
Doc parse(std::string_view body) {
  if (body.empty()) return nullptr;
  return Doc(xmlReadMemory(body.data(), static_cast<int>(body.size()), "azure.xml", nullptr,
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

bool encoded(const xmlNode* n) {
  xmlChar* v = xmlGetProp(n, BAD_CAST "Encoded");
  const bool yes = v != nullptr && xmlStrcmp(v, BAD_CAST "true") == 0;
  xmlFree(v);
  return yes;
}

std::string xml_escaped(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace

AzureListPage parse_azure_list_page(std::string_view body, const std::string& url) {
  const Doc doc = parse(body);
  const xmlNode* root = doc ? xmlDocGetRootElement(doc.get()) : nullptr;
  if (root == nullptr || !named(root, "EnumerationResults")) {
    throw ShardingError(url + ": List Blobs answered with a body that is no EnumerationResults");
  }
  AzureListPage page;
  if (const xmlNode* blobs = child(root, "Blobs")) {
    for (const xmlNode* b = blobs->children; b != nullptr; b = b->next) {
      if (!named(b, "Blob")) continue;
      AzureListedBlob out;
      const xmlNode* name = child(b, "Name");
      if (name == nullptr) throw ShardingError(url + ": a listed blob has no Name");
      out.name = encoded(name) ? percent_decode(text(name)) : text(name);
      const xmlNode* props = child(b, "Properties");
      const std::string size = props != nullptr ? child_text(props, "Content-Length") : "";
      const auto [end, ec] = std::from_chars(size.data(), size.data() + size.size(), out.size);
      if (size.empty() || ec != std::errc() || end != size.data() + size.size()) {
        throw ShardingError(url + ": the listed blob \"" + out.name +
                            "\" has no valid Content-Length");
      }
      out.etag = child_text(props, "Etag");
      if (!out.etag.empty() && out.etag.front() != '"') out.etag = '"' + out.etag + '"';
      page.blobs.push_back(std::move(out));
    }
  }
  page.next_marker = child_text(root, "NextMarker");
  return page;
}

std::string azure_block_list_xml(const std::vector<std::string>& block_ids) {
  std::string out = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<BlockList>";
  for (const std::string& id : block_ids) out += "<Latest>" + xml_escaped(id) + "</Latest>";
  return out + "</BlockList>";
}

}  // namespace xpscale::detail
