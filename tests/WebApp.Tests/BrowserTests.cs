using OpenQA.Selenium;
using PgFirst.Testing;

namespace WebApp.Tests;

/// <summary>The demo app in a real (headless) browser against a real Kestrel server. Needs chromium and chromium-driver.</summary>
public class BrowserTests(PostgresServer postgres, RedisServer redis) : PostgresTest(postgres)
{
    private static readonly byte[] PngSignature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    [Fact]
    public async Task Home_PostgreSqlBackend_ShowsTheBackendTableInChromium()
    {
        await using var app = BrowserApp.Start(Server, redis, Schema, backend: "PostgreSql");
        using var chromium = HeadlessChromium.Start();
        var driver = chromium.Driver;

        driver.Navigate().GoToUrl(app.Url("/"));
        var table = HeadlessChromium.WaitUntil(
            driver,
            d => d.FindElements(By.TagName("table")).FirstOrDefault(t => t.Text.Contains("Backend", StringComparison.Ordinal)),
            description: "the table of backends");

        Assert.Contains("PgFirst", driver.Title, StringComparison.Ordinal);
        Assert.Contains("Cache", table.Text, StringComparison.Ordinal);
        Assert.Contains("PostgreSql", table.Text, StringComparison.Ordinal);
        var screenshot = HeadlessChromium.SaveScreenshot(driver, "home.png");
        Assert.True(File.Exists(screenshot), $"{screenshot} was written");
        var bytes = await File.ReadAllBytesAsync(screenshot, CancellationToken);
        Assert.True(bytes.Length > PngSignature.Length, $"{screenshot} has {bytes.Length} bytes");
        Assert.Equal(PngSignature, bytes[..PngSignature.Length]);
    }
}
