// The S3 XML documents: what the client takes from them, and that a body
// that is not the expected document is a clear error (or, for error
// bodies, simply nothing).
#include "s3_xml.h"  // internal to sharding: sharding/src/s3

#include <gtest/gtest.h>

#include "xpscale/sharding/error.h"

namespace xpscale::detail {
namespace {

TEST(S3Xml, ErrorDocumentGivesCodeAndMessage) {
  const S3ErrorDoc doc = parse_s3_error(
      "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>The specified key does not "
      "exist.</Message><Key>a b</Key></Error>");
  EXPECT_EQ(doc.code, "NoSuchKey");
  EXPECT_EQ(doc.message, "The specified key does not exist.");
}

TEST(S3Xml, AnythingElseIsNoErrorDocument) {
  for (const char* body : {"", "<html>busy</html>", "not xml at all <", "<Error><Code>"}) {
    EXPECT_EQ(parse_s3_error(body).code, "") << body;
  }
}

TEST(S3Xml, ListPageWithNamespaceEntitiesAndToken) {
  const ListPage page = parse_list_page(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
      "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<Name>b</Name><IsTruncated>true</IsTruncated>"
      "<NextContinuationToken>1ueGc+/=</NextContinuationToken>"
      "<Contents><Key>a &amp; b/caf\xc3\xa9.tar</Key><Size>1024</Size>"
      "<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag></Contents>"
      "<Contents><Key>c</Key><Size>0</Size><ETag>abc</ETag></Contents>"
      "</ListBucketResult>",
      "s3://b/");
  ASSERT_EQ(page.objects.size(), 2u);
  EXPECT_EQ(page.objects[0].key, "a & b/caf\xc3\xa9.tar");
  EXPECT_EQ(page.objects[0].size, 1024u);
  EXPECT_EQ(page.objects[0].etag, "\"9b2cf535f27731c974343645a3985328\"");
  EXPECT_EQ(page.objects[1].etag, "\"abc\"");  // quoted like a HEAD's ETag
  EXPECT_TRUE(page.truncated);
  EXPECT_EQ(page.next_token, "1ueGc+/=");
}

TEST(S3Xml, BadListingsAreErrorsNamingTheUrl) {
  for (const char* body :
       {"<Error><Code>AccessDenied</Code></Error>", "garbage",
        "<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>",
        "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"}) {
    try {
      parse_list_page(body, "s3://bucket/prefix/");
      ADD_FAILURE() << "no error for " << body;
    } catch (const ShardingError& e) {
      EXPECT_NE(std::string(e.what()).find("s3://bucket/prefix/"), std::string::npos) << e.what();
    }
  }
}

TEST(S3Xml, UploadIdAndCompleteDocument) {
  EXPECT_EQ(parse_upload_id("<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
                            "<UploadId>VXBsb2Fk+/=</UploadId></InitiateMultipartUploadResult>",
                            "s3://b/k"),
            "VXBsb2Fk+/=");
  EXPECT_THROW(parse_upload_id("<InitiateMultipartUploadResult/>", "s3://b/k"), ShardingError);
  EXPECT_EQ(complete_upload_xml({"\"a\"", "\"b\""}),
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"a\"</ETag></Part>"
            "<Part><PartNumber>2</PartNumber><ETag>\"b\"</ETag></Part></CompleteMultipartUpload>");
}

}  // namespace
}  // namespace xpscale::detail
