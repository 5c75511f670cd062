# Homebrew formula for Aegis, over the release tarballs. This file is the
# template: `make formula` writes dist/homebrew/aegis.rb with the version,
# release URL and sha256 values from dist/SHA256SUMS filled in.
class Aegis < Formula
  desc "Local microVM runtime for AI agents"
  homepage "https://github.com/aegisvm/aegis"
  version "@VERSION@"
  license "Apache-2.0"

  on_macos do
    on_arm do
      url "@RELEASE_URL@/aegis-@VERSION@-darwin-arm64.tar.gz"
      sha256 "@SHA256_DARWIN_ARM64@"
    end
    on_intel do
      url "@RELEASE_URL@/aegis-@VERSION@-darwin-x64.tar.gz"
      sha256 "@SHA256_DARWIN_X64@"
    end
  end

  on_linux do
    on_arm do
      url "@RELEASE_URL@/aegis-@VERSION@-linux-arm64.tar.gz"
      sha256 "@SHA256_LINUX_ARM64@"
    end
    on_intel do
      url "@RELEASE_URL@/aegis-@VERSION@-linux-x64.tar.gz"
      sha256 "@SHA256_LINUX_X64@"
    end
  end

  depends_on "e2fsprogs" # mkfs.ext4 for the guest disks
  depends_on "gnupg"     # gpgv checks Debian's signatures in `aegis setup`
  depends_on "qemu"
  depends_on "xz"        # unpacks Debian's kernel package

  ROLE_LINKS = %w[aegisd aegis-gateway aegis-harness aegis-agent aegis-vmm-worker aegis-mcp-guest].freeze

  def install
    bin.install "aegis"
    ROLE_LINKS.each { |link| bin.install_symlink "aegis" => link }
    # aegis setup looks for the keyring in ../share/aegis beside the binary.
    pkgshare.install "debian-archive-keyring.gpg" if File.exist?("debian-archive-keyring.gpg")
    (pkgshare/"entitlements.plist").write <<~XML
      <?xml version="1.0" encoding="UTF-8"?>
      <!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
      <plist version="1.0"><dict><key>com.apple.security.hypervisor</key><true/></dict></plist>
    XML
    doc.install "README.md", "LICENSE"
  end

  def caveats
    s = <<~EOS
      mkfs.ext4 is keg-only in Homebrew's e2fsprogs; put it on PATH for aegis:
        export PATH="#{Formula["e2fsprogs"].opt_sbin}:$PATH"
      Then: aegis setup && aegis up && aegis run -- echo hello
    EOS
    if OS.mac?
      s += <<~EOS

        macOS: QEMU (the default backend) brings its own Hypervisor.framework
        entitlement. The in-process libkrun backend needs aegis itself signed
        with com.apple.security.hypervisor:
          codesign --force --sign - --entitlements #{opt_pkgshare}/entitlements.plist #{opt_bin}/aegis
      EOS
    end
    s
  end

  test do
    assert_match "aegis #{version}", shell_output("#{bin}/aegis --version")
    assert_match "USAGE aegis", shell_output("#{bin}/aegis help")
  end
end
